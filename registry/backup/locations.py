"""A backup's location as the command line names it: a directory, or ``s3://bucket/prefix``.

Its own module so that the layouts import nothing of each other: ``layout``
defines the interface and the directory, ``s3`` the bucket, and only this
module knows both.
"""

from pathlib import Path

from registry.backup.layout import DirectoryLayout, Layout


def open_layout(location: str | Layout) -> Layout:
    """The layout at ``location`` (a layout given already is returned as it is: tests pass their own)."""
    if isinstance(location, Layout):
        return location
    if location.startswith("s3://"):
        # Imported here: boto3 and botocore (~11 MiB, 0.1 s) only for a backup that talks to S3.
        from registry.backup.s3 import S3Layout

        return S3Layout.from_url(location)
    return DirectoryLayout(Path(location))
