"""skopeo, the real client, run as a subprocess against the test server over plain HTTP.

With ``creds`` (``username:password``) it logs in through the server's token
service, as it would to any registry.
"""

from dataclasses import dataclass
from pathlib import Path

from tests import ocilayout, processes

TIMEOUT = 120


@dataclass(frozen=True)
class Skopeo:
    path: str
    creds: str | None = None

    def command(self, *args: str) -> list[str]:
        """skopeo's command line for ``args``, for ``run`` or a test that starts it in the background."""
        # --insecure-policy: no signature policy to consult, whatever /etc/containers holds.
        return [self.path, "--insecure-policy", *args]

    def run(self, *args: str) -> bytes:
        result = processes.run(self.command(*args), capture_output=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"skopeo {' '.join(args)}:\n{result.stderr.decode()}"
        return result.stdout

    def push(self, layout: Path, tag: str, destination: str, *options: str) -> None:
        """Copy ``layout:tag`` to ``destination`` (host/name:tag); ``--all`` for every platform."""
        self.run(*self.push_arguments(layout, tag, destination, *options))

    def push_arguments(self, layout: Path, tag: str, destination: str, *options: str) -> list[str]:
        """``push``'s arguments to skopeo (``command`` makes them a command line)."""
        return [
            "copy",
            *options,
            *self._creds("--dest-creds"),
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{destination}",
        ]

    def pull(self, source: str, layout: Path, tag: str, *options: str) -> None:
        self.run(
            "copy",
            *options,
            *self._creds("--src-creds"),
            "--src-tls-verify=false",
            f"docker://{source}",
            f"oci:{layout}:{tag}",
        )

    def round_trip(self, layout: Path, tag: str, digest: str, reference: str, *options: str) -> None:
        """Push ``layout:tag`` (top-level manifest ``digest``) to ``reference`` and pull it back beside
        ``layout``: the registry serves the same digest, and every blob comes back byte for byte."""
        self.push(layout, tag, reference, *options)
        assert self.manifest_digest(reference) == digest
        pulled = layout.with_name(f"{layout.name}-pulled")
        self.pull(reference, pulled, tag, *options)
        assert ocilayout.tagged(pulled, tag) == digest
        assert ocilayout.blobs(pulled) == ocilayout.blobs(layout)

    def manifest_digest(self, reference: str) -> str:
        """The digest of the manifest bytes the registry serves for ``reference``."""
        raw = self.run(
            "inspect", "--raw", *self._creds("--creds"), "--tls-verify=false", f"docker://{reference}"
        )
        return ocilayout.sha256(raw)

    def _creds(self, option: str) -> tuple[str, ...]:
        return (f"{option}={self.creds}",) if self.creds else ()
