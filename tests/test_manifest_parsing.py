"""registry.manifests.parse: what a manifest references, and what makes it invalid."""

import json

import pytest

from registry.errors import RegistryError
from registry.manifests import parse
from tests import oci

CONFIG = oci.config("parse")
LAYER = oci.layer("parse")
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def manifest(**fields) -> dict:
    document = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": CONFIG.descriptor(),
        "layers": [LAYER.descriptor()],
    }
    document.update(fields)
    return {key: value for key, value in document.items() if value is not None}


def parsed(document: dict, content_type: str | None = oci.OCI_MANIFEST):
    return parse(json.dumps(document).encode(), content_type)


def invalid(document: dict | bytes, content_type: str | None = oci.OCI_MANIFEST) -> str:
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(RegistryError) as caught:
        parse(content, content_type)
    assert caught.value.error.code == "MANIFEST_INVALID"
    return caught.value.message


def test_it_lists_config_and_layers_with_their_sizes() -> None:
    result = parsed(manifest())
    assert result.blobs == {CONFIG.digest: CONFIG.size, LAYER.digest: LAYER.size}
    assert result.children == []
    assert result.media_type == oci.OCI_MANIFEST


def test_it_gives_an_image_its_config_type_as_artifact_type() -> None:
    assert parsed(manifest()).artifact_type == oci.OCI_CONFIG
    assert parsed(manifest(artifactType="application/x.sbom")).artifact_type == "application/x.sbom"


def test_it_reads_subject_and_annotations() -> None:
    subject = oci.layer("subject").descriptor(mediaType=oci.OCI_MANIFEST)
    result = parsed(manifest(subject=subject, annotations={"a": "b"}))
    assert result.subject == subject["digest"]
    assert result.annotations == {"a": "b"}


def test_it_does_not_require_nondistributable_layers() -> None:
    foreign = oci.layer("foreign").descriptor(
        mediaType="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
    document = manifest(mediaType=DOCKER_MANIFEST, layers=[foreign])
    assert parsed(document, DOCKER_MANIFEST).blobs == {CONFIG.digest: CONFIG.size}


def test_it_lists_the_children_of_an_index_once() -> None:
    child = oci.layer("child").descriptor(mediaType=oci.OCI_MANIFEST)
    document = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [child, child]}
    result = parsed(document, oci.OCI_INDEX)
    assert result.children == [child["digest"]]
    assert result.blobs == {}


def test_it_takes_the_media_type_from_the_body_without_content_type() -> None:
    document = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}
    assert parsed(document, None).media_type == DOCKER_LIST
    assert parsed(manifest(mediaType=None), "application/octet-stream").media_type == oci.OCI_MANIFEST


@pytest.mark.parametrize(
    ("document", "content_type", "says"),
    [
        (b"not json", oci.OCI_MANIFEST, "not valid JSON"),
        (b"[]", oci.OCI_MANIFEST, "JSON object"),
        (b"\xff\xfe", oci.OCI_MANIFEST, "not valid JSON"),
        (manifest(schemaVersion=1), oci.OCI_MANIFEST, "schemaVersion"),
        (manifest(), oci.OCI_INDEX, "does not match"),
        (manifest(), "application/vnd.example+json", "unsupported"),
        (manifest(), "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
        (manifest(config=None), oci.OCI_MANIFEST, "config"),
        (manifest(layers={}), oci.OCI_MANIFEST, "layers"),
        (
            manifest(layers=[{"mediaType": "x", "digest": "sha256:abc", "size": 1}]),
            oci.OCI_MANIFEST,
            "digest",
        ),
        (manifest(layers=[{"mediaType": "x", "digest": LAYER.digest, "size": -1}]), oci.OCI_MANIFEST, "size"),
        (
            manifest(layers=[{"mediaType": "x", "digest": LAYER.digest, "size": True}]),
            oci.OCI_MANIFEST,
            "size",
        ),
        (manifest(layers=[{"digest": LAYER.digest, "size": 1}]), oci.OCI_MANIFEST, "mediaType"),
        (manifest(subject="sha256:x"), oci.OCI_MANIFEST, "subject"),
        (manifest(annotations={"a": 1}), oci.OCI_MANIFEST, "annotations"),
        (manifest(artifactType=7), oci.OCI_MANIFEST, "artifactType"),
        ({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": None}, oci.OCI_INDEX, "manifests"),
    ],
)
def test_it_refuses(document, content_type: str, says: str) -> None:
    assert says in invalid(document, content_type)
