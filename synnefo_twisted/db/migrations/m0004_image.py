"""
The image registry as the Image API (Glance v1) needs it: the boot
requirements (C{min_disk} GiB, C{min_ram} MiB), deletion protection and the
deletion time of an image, whether a member may share the image further
(C{can_share}), and an index to find the images shared with a member.

SQLite accepts these C{ADD COLUMN}s (each has a constant default).
"""

from __future__ import annotations

STATEMENTS = [
    "ALTER TABLE images ADD COLUMN min_disk INTEGER NOT NULL DEFAULT 0 CHECK (min_disk >= 0)",
    "ALTER TABLE images ADD COLUMN min_ram INTEGER NOT NULL DEFAULT 0 CHECK (min_ram >= 0)",
    "ALTER TABLE images ADD COLUMN protected BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE images ADD COLUMN deleted_at TIMESTAMPTZ",
    "ALTER TABLE image_members ADD COLUMN can_share BOOLEAN NOT NULL DEFAULT FALSE",
    "CREATE INDEX image_members_member ON image_members(member)",
    "CREATE INDEX images_owner ON images(owner, deleted)",
]


def statements(dialect: str, fill: dict[str, str]) -> list[str]:
    """
    The statements (the same on both dialects).
    """
    return [s.format(**fill) for s in STATEMENTS]
