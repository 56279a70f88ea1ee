"""The one exception every site-config mistake raises."""
from __future__ import annotations

from ..setting_rules import SettingsError


class SiteConfigError(SettingsError):
    """A site config cannot work; each line names the file, the key and what is allowed.

    A ``SettingsError`` (and so a ``ValueError``), so the CLI and steering scripts that
    already report runner-setting mistakes report these the same way, without a traceback.
    """
