"""What `harden` knows about images: references (`reference`) and, per image family,
what it needs to run hardened (`knowledge`, from `profiles/images.yaml`)."""

from .knowledge import ImageEntry, Match, TmpfsSpec, builtin_entries, load_config, load_entries, match_image, match_service_image
from .reference import ImageRef, parse_image

__all__ = ["ImageEntry", "ImageRef", "Match", "match_service_image", "TmpfsSpec", "builtin_entries", "load_config", "load_entries", "match_image", "parse_image"]
