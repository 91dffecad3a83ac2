"""Config: schema, loading with clear errors, tag expansion."""

from core.config.loader import (
    DEFAULT_CONFIG,
    ConfigError,
    LoadedConfig,
    ResolvedTag,
    expand_tags,
    load_config,
)
from core.config.schema import DECISION_CLASSES, ROLES, Config

__all__ = [
    "DECISION_CLASSES",
    "DEFAULT_CONFIG",
    "ROLES",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "ResolvedTag",
    "expand_tags",
    "load_config",
]
