"""Finding site configs: package first, then the user's directory, then CAF_HPC_SITE_PATH; paths work too."""
from __future__ import annotations

import os

import pytest

from caf_hpc.sites import SiteConfigError, load_site, lookup

pytestmark = pytest.mark.timeout(20)

CONFIG = "scheduler: local\ndescription: {}\n"


@pytest.fixture
def dirs(isolated_sites, tmp_path, monkeypatch):
    """A user config directory and two CAF_HPC_SITE_PATH directories, all empty."""
    user = tmp_path / "home" / ".config" / "caf-hpc" / "sites"
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (user, first, second):
        directory.mkdir(parents=True)
    monkeypatch.setenv("CAF_HPC_SITE_PATH", os.pathsep.join([str(first), str(second)]))  # two, for their order
    return {"user": user, "first": first, "second": second}


def put(directory, name, description):
    path = directory / f"{name}.yaml"
    path.write_text(CONFIG.format(description))
    return path


def test_package_directory_is_the_shipped_site_configs():
    directory = lookup.package_directory()
    assert directory.name == "site-configs" and directory.parent.name == "caf_hpc"
    assert (directory / "local.yaml").is_file()


def test_package_site_wins_over_user_and_path(dirs):
    put(dirs["user"], "local", "user")
    put(dirs["first"], "local", "path")
    assert lookup.find("local") == lookup.package_directory() / "local.yaml"


def test_user_directory_comes_before_site_path(dirs):
    put(dirs["user"], "mysite", "user")
    put(dirs["first"], "mysite", "path")
    assert load_site("mysite").description == "user"


def test_site_path_directories_are_searched_left_to_right(dirs):
    put(dirs["second"], "mysite", "second")
    assert load_site("mysite").description == "second"
    put(dirs["first"], "mysite", "first")
    assert load_site("mysite").description == "first"


def test_xdg_config_home_moves_the_user_directory(dirs, tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "caf-hpc" / "sites").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    put(xdg / "caf-hpc" / "sites", "mysite", "xdg")
    assert load_site("mysite").description == "xdg"


def test_yml_suffix_is_found_too(dirs):
    (dirs["first"] / "other.yml").write_text(CONFIG.format("yml"))
    assert load_site("other").description == "yml"


def test_a_path_to_a_file_is_used_directly(dirs, tmp_path):
    path = put(tmp_path, "anywhere", "direct")
    site = load_site(str(path))
    assert (site.name, site.path, site.description) == ("anywhere", path, "direct")


def test_a_missing_file_path_is_an_error(dirs, tmp_path):
    with pytest.raises(SiteConfigError, match=r"nope\.yaml: no such site config file"):
        load_site(str(tmp_path / "nope.yaml"))


def test_an_unknown_name_lists_known_sites_and_suggests_one(dirs):
    with pytest.raises(SiteConfigError) as caught:
        load_site("localhost-slrum")
    message = str(caught.value)
    assert message.startswith("localhost-slrum: no site config of that name (did you mean 'localhost-slurm'?). "
                              "Known sites: htcondor, local, localhost-pbs,")
    assert str(dirs["user"]) in message and str(dirs["second"]) in message


def test_available_lists_all_in_lookup_order_and_marks_shadowed(dirs):
    put(dirs["user"], "local", "user")
    put(dirs["second"], "mysite", "second")
    found = lookup.site_files()
    origins = [site.origin for site in found]
    assert origins == sorted(origins, key=["package", "user", "CAF_HPC_SITE_PATH"].index)
    shadowed = [site for site in found if site.shadowed_by is not None]
    assert [(s.name, s.origin, s.shadowed_by) for s in shadowed] == [
        ("local", "user", lookup.package_directory() / "local.yaml")]
    assert ("mysite", "CAF_HPC_SITE_PATH") in [(s.name, s.origin) for s in found]


def test_messages_name_package_files_by_their_short_path():
    assert lookup.display(lookup.package_directory() / "slurm.yaml") == "site-configs/slurm.yaml"
