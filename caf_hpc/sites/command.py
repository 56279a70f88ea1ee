"""``caf-hpc sites list|show|check`` and ``caf-hpc job-script``: site configs from the command line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from . import lookup
from .config import load_site, read_yaml
from .errors import SiteConfigError
from .jobscript import job_script, submit_command
from .security import tls_directory
from .validate import find_placeholder, validate


def add_commands(subparsers: Any) -> None:
    sites = subparsers.add_parser(
        "sites", help="list, show and check site configs",
        description="Site configs: one YAML file per HPC or grid site. A name is looked up in the package's "
                    "site-configs/, then ~/.config/caf-hpc/sites/, then the directories of CAF_HPC_SITE_PATH; "
                    "a path to a file works too.")
    actions = sites.add_subparsers(dest="sites_command", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="every site config found: name, scheduler, file",
                                 description="List every site config on the search path, in lookup order: "
                                             "name, scheduler and file.")
    listing.set_defaults(handler=list_sites)

    show = actions.add_parser("show", help="print a site's merged config as YAML",
                              description="Print the site's config as caf-hpc uses it: validated, "
                                          "with caf-hpc's defaults filled in. A template (a file with "
                                          "<PLACEHOLDERS>) is printed as written, each line to fill in "
                                          "marked, to copy.")
    show.add_argument("site", metavar="NAME|FILE")
    show.set_defaults(handler=show_site)

    check = actions.add_parser("check", help="validate a site config and dry-submit its job",
                               description="Validate a site config; where the scheduler's commands are on "
                                           "PATH, also ask the batch system whether it would accept the job "
                                           "(sbatch --test-only, qsub -w v, condor_submit -dry-run) without "
                                           "submitting it. Exit code 0: fine; 1: the dry submission failed; "
                                           "2: the config is invalid.")
    check.add_argument("site", metavar="NAME|FILE")
    check.add_argument("--no-submit", action="store_true", help="only validate; skip the dry submission")
    check.set_defaults(handler=check_site)

    script = subparsers.add_parser(
        "job-script", help="print the exact batch script a site submits",
        description="Print the batch script a site's cluster submits for each job, container wrapping and "
                    "TLS arguments included. Only the scheduler address and the worker name are filled in "
                    "when the cluster starts.")
    script.add_argument("site", metavar="NAME|FILE")
    script.set_defaults(handler=print_job_script)


def _scheduler_and_note(site: lookup.SiteFile) -> tuple:
    try:
        raw = read_yaml(site.path, lookup.display(site.path))
    except SiteConfigError:
        return "?", "not valid YAML"
    scheduler = str(raw.get("scheduler", "?")) if isinstance(raw, dict) else "?"
    notes = []
    if find_placeholder(raw):
        notes.append("template: fill in the <PLACEHOLDERS>")
    if site.shadowed_by is not None:
        notes.append(f"shadowed by {site.shadowed_by}")
    return scheduler, "; ".join(notes)


def list_sites(args: argparse.Namespace) -> int:
    rows = [(site.name, *_scheduler_and_note(site), str(site.path)) for site in lookup.site_files()]
    if not rows:
        print("no site configs found in: " + ", ".join(str(d) for _, d in lookup.search_path()))
        return 0
    name_width = max(4, *(len(row[0]) for row in rows))
    scheduler_width = max(9, *(len(row[1]) for row in rows))
    print(f"{'NAME':<{name_width}}  {'SCHEDULER':<{scheduler_width}}  FILE")
    for name, scheduler, note, path in rows:
        print(f"{name:<{name_width}}  {scheduler:<{scheduler_width}}  {path}" + (f"  ({note})" if note else ""))
    return 0


#: How ``sites show`` marks a template's line that holds a placeholder.
FILL_IN = "<- fill in"


def placeholder_lines(text: str) -> dict:
    """``{line index: [(key, placeholder), ...]}`` of the placeholders in a YAML text's values (commented-out
    lines are not values: their placeholders wait until the line is used)."""
    found: dict = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for name, value in node.value:
                walk(name, key)  # a placeholder as a key, where the template names one
                walk(value, f"{key}.{name.value}" if key else str(name.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{key}[{index}]")
        elif isinstance(node, yaml.ScalarNode):
            placeholder = find_placeholder(node.value)
            if placeholder:
                found.setdefault(node.start_mark.line, []).append((key, placeholder))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return found


def show_template(path: Any, source: str, name: str) -> int:
    """A template as written, comments and all, each line to fill in marked, and at the end the keys
    that need a value before ``sites check`` accepts the file. What else is wrong is refused as always."""
    validate(read_yaml(path, source), source, unfilled=[])  # every other mistake: the usual error
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    marked = placeholder_lines("\n".join(lines))
    print(f"# {name}: {source}, a template: as written, each line to fill in marked '{FILL_IN}'")
    for index, line in enumerate(lines):
        if index in marked:
            line = f"{line}   {FILL_IN}" if "#" in line.split(marked[index][0][1], 1)[-1] else f"{line}   # {FILL_IN}"
        print(line)
    keys = [f"{key} ({placeholder})" for entries in marked.values() for key, placeholder in entries]
    print(f"# To fill in before `caf-hpc sites check NAME` accepts it: {', '.join(keys)}.")
    print(f"# Copy it first: cp {path} {lookup.user_directory()}/NAME.yaml")
    return 0


def show_site(args: argparse.Namespace) -> int:
    path = lookup.find(args.site)
    source = lookup.display(path)
    if find_placeholder(read_yaml(path, source)):
        return show_template(path, source, path.stem if lookup.looks_like_path(args.site) else args.site)
    site = load_site(args.site)
    print(f"# {site.name}: {site.path}, validated, with caf-hpc's defaults")
    print(yaml.safe_dump(site.as_dict(), sort_keys=False, default_flow_style=False).rstrip())
    return 0


def check_site(args: argparse.Namespace) -> int:
    site = load_site(args.site)
    print(f"{site.name}: valid ({site.scheduler}, {site.path})")
    if not site.is_batch:
        print("dry submission: nothing to submit (the local cluster runs worker processes on this machine)")
        return 0
    if site.tls:
        directory = tls_directory(site.security["directory"])
        state = "present" if directory.is_dir() else "created when the cluster first starts"
        print(f"TLS: on, credentials in {directory} ({state})")
    else:
        print("TLS: off (tls: false): anyone who can reach the scheduler's port can join or submit")
    if args.no_submit:
        return 0
    run = site.scheduler_type.dry_submit(job_script(site), submit_command(site), site.name)
    print(f"dry submission: {run.summary}")
    if run.output:
        print("  " + run.output.replace("\n", "\n  "))
    return 1 if run.ok is False else 0


def print_job_script(args: argparse.Namespace) -> int:
    site = load_site(args.site)
    script = job_script(site, directories=[os.getcwd()])
    sys.stdout.write(script)
    print(f"caf-hpc: {site.name}: each job is submitted as `{submit_command(site)} SCRIPT`; the scheduler "
          "address and worker name are filled in when the cluster starts", file=sys.stderr)
    return 0
