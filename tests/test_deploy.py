"""deploy/: NATS configs parse and enforce the roles on a real server; compose, k8s and Docker files are sound.

No Docker engine runs here, so containers are never started: each config is checked with the tool
that reads it (`nats-server -t`, redis-server, the hmr parser, the settings loader), and the
permissions and TLS wiring run against real nats-server and redis-server processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import nats
import nats.errors
import pytest

from horde_model_reference.bus.embedded import NatsServerNotFoundError, find_nats_server, free_port
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore, StoredSnapshot
from horde_model_reference.cli import build_parser
from horde_model_reference.contracts import PROCESS_VARIABLES, setting_variables
from horde_model_reference.errors import BackendError
from horde_model_reference.settings import ENV_PREFIX, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
PASSWORDS = {
    "HMR_SERVICE_PASSWORD": "service-secret",
    "HMR_CONSUMER_PASSWORD": "consumer-secret",
    "HMR_OPERATOR_PASSWORD": "operator-secret",
    "NATS_SYS_PASSWORD": "sys-secret",
    "REDIS_SERVICE_PASSWORD": "redis-service-secret",
    "REDIS_CONSUMER_PASSWORD": "redis-consumer-secret",
}
KNOWN_VARIABLES = {row[0] for row in setting_variables()} | {row[0] for row in PROCESS_VARIABLES}
_COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# -- helpers ------------------------------------------------------------------------------------


def _yaml() -> Any:
    return pytest.importorskip("yaml")


def _load_yaml(path: Path) -> list[Any]:
    return [doc for doc in _yaml().safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    (document,) = _load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(document, dict)
    return document


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` interpolation."""

    def one(match: re.Match[str]) -> str:
        name, op = match["name"], match["op"]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op and op.endswith("?"):
            raise AssertionError(f"compose needs {name}: {match['arg']}")
        return match["arg"] or ""

    return _COMPOSE_VARIABLE.sub(one, value)


def _nats_binary() -> Path:
    try:
        return find_nats_server()
    except NatsServerNotFoundError as exc:
        pytest.skip(str(exc))


def _hmr_rejects(args: list[str]) -> str | None:
    """Why the real `hmr` parser refuses `args` (None when it accepts them)."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            build_parser().parse_args(args)
    except SystemExit:
        return errors.getvalue()
    return None


def _parse_hmr(args: list[str]) -> None:
    """Check `args` with the real `hmr` parser (skips while `hmr serve --http` has not landed)."""
    rejection = _hmr_rejects(args)
    if rejection and "--http" in args and "--http" in rejection:
        pytest.skip("`hmr serve --http` (the HTTP face, issue 7) is not wired into the CLI yet")
    assert rejection is None, f"hmr rejects {args}: {rejection}"


def _render_helm_merge(values: dict[str, Any]) -> str:
    """The NATS config the chart renders from `config.merge` (`<< $X >>` is emitted unquoted)."""
    return re.sub(r'"<< (.+?) >>"', r"\1", json.dumps(values["config"]["merge"], indent=2))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and server certificate made by deploy/gen-certs.sh (as the compose `certs` job does)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", str(DEPLOY / "gen-certs.sh"), str(out)], check=True, capture_output=True)
    assert {"ca.pem", "server.pem", "server-key.pem"} <= {p.name for p in out.iterdir()}
    return out


def _nats_test(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_nats_binary()), "-t", "-c", str(config)], capture_output=True, text=True, env=env, timeout=20
    )


def _accounts_conf(source: str) -> str:
    if source == "compose":
        return (DEPLOY / "nats" / "accounts.conf").read_text()
    (values,) = _load_yaml(K8S / "helm" / "nats-values.yaml")
    return _render_helm_merge(values)


def _wait_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


@contextlib.contextmanager
def _process(args: list[str], port: int, what: str, **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    try:
        _wait_port(port, process, what)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _nats_with_accounts(tmp_path: Path, source: str, certs: Path | None = None) -> Iterator[str]:
    """A nats-server with the accounts of `source` ("compose" or "helm"), TLS when `certs` is given."""
    workdir = tmp_path / f"nats-{source}"
    workdir.mkdir()
    (workdir / "accounts.conf").write_text(_accounts_conf(source))
    port = free_port()
    lines = [f"listen: 127.0.0.1:{port}", f'jetstream {{ store_dir: "{workdir / "js"}" }}']
    if certs is not None:
        lines.append(
            f'tls {{ cert_file: "{certs / "server.pem"}", key_file: "{certs / "server-key.pem"}", '
            f'ca_file: "{certs / "ca.pem"}" }}'
        )
    lines.append("include ./accounts.conf")
    config = workdir / "server.conf"
    config.write_text("\n".join(lines) + "\n")
    env = os.environ | PASSWORDS
    with _process([str(_nats_binary()), "-c", str(config)], port, "nats-server", env=env):
        yield f"{'tls' if certs else 'nats'}://127.0.0.1:{port}"


def _redis_command(certs: Path, port: int) -> list[str]:
    """The compose file's redis-server command, with this machine's certificate paths and port."""
    command = [_interpolate(str(arg), PASSWORDS) for arg in _compose()["services"]["redis"]["command"]]
    command = [arg.replace("/certs/", f"{certs}/") for arg in command]
    command[command.index("--tls-port") + 1] = str(port)
    binary = shutil.which(command[0])
    if binary is None:
        pytest.skip("no redis-server binary")
    return [binary, *command[1:], "--bind", "127.0.0.1", "--dir", str(certs)]


async def _eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


async def _answer(client: Any, subject: str) -> bytes:
    """The reply to a request. A request right after the responder subscribed sometimes gets
    "no responders" from nats-server 2.15 even after a flush (seen without any permissions too),
    so that one answer is retried, as the consumer's resync does."""
    for _ in range(5):
        try:
            reply = await client.request(subject, b"", timeout=2)
        except nats.errors.NoRespondersError:
            await anyio.sleep(0.05)
            continue
        data: bytes = reply.data
        return data
    raise AssertionError(f"no answer on {subject}")


# -- NATS ---------------------------------------------------------------------------------------


def test_every_nats_config_passes_nats_server_t(tmp_path: Path, certs: Path) -> None:
    env = os.environ | PASSWORDS | {"SERVER_NAME": "nats-1"}
    env |= {"NATS_TLS_CERT": str(certs / "server.pem"), "NATS_TLS_KEY": str(certs / "server-key.pem")}
    env |= {"NATS_TLS_CA": str(certs / "ca.pem")}
    configs = sorted((DEPLOY / "nats").glob("*.conf"))
    assert {c.name for c in configs} == {"accounts.conf", "cluster.conf"}
    helm = tmp_path / "helm-merge.conf"
    helm.write_text(_accounts_conf("helm"))
    for config in [*configs, helm]:
        result = _nats_test(config, env)
        assert result.returncode == 0, f"{config.name}: {result.stderr}"
        assert "is valid" in result.stderr + result.stdout
    # The variables are really read: without the passwords the configs do not load.
    result = _nats_test(DEPLOY / "nats" / "accounts.conf", dict(os.environ))
    assert result.returncode != 0 and "HMR_SERVICE_PASSWORD" in result.stderr


def test_the_cluster_config_has_three_routes_and_jetstream() -> None:
    text = (DEPLOY / "nats" / "cluster.conf").read_text()
    assert re.search(r"^jetstream\s*\{", text, re.MULTILINE)
    assert sorted(re.findall(r"nats-route://(nats-\d):6222", text)) == ["nats-1", "nats-2", "nats-3"]
    nodes = {name for name in _compose()["services"] if name.startswith("nats-")}
    assert nodes == {"nats-1", "nats-2", "nats-3"}


@pytest.mark.anyio
@pytest.mark.integration
@pytest.mark.parametrize("source", ["compose", "helm"])
async def test_only_the_service_publishes_and_consumers_only_follow_and_request_snapshots(
    tmp_path: Path, source: str
) -> None:
    errors: dict[str, list[str]] = {"service": [], "consumer": [], "operator": []}

    async def connect(url: str, role: str) -> Any:
        async def error_cb(exc: Exception) -> None:
            errors[role].append(str(exc).lower())

        return await nats.connect(
            url,
            user=f"hmr-{role}",
            password=PASSWORDS[f"HMR_{role.upper()}_PASSWORD"],
            error_cb=error_cb,
            allow_reconnect=False,
            connect_timeout=3,
            inbox_prefix=f"_INBOX.{role}",
        )

    def violations(role: str, kind: str) -> int:
        return sum(f"permissions violation for {kind}" in e for e in errors[role])

    with _nats_with_accounts(tmp_path, source) as url:
        service, consumer, operator = [
            await connect(url, role) for role in ("service", "consumer", "operator")
        ]
        try:
            changes = await consumer.subscribe("hmr.v1.changed.>")
            beats = await consumer.subscribe("hmr.v1.heartbeat")
            watch = await operator.subscribe("hmr.v1.changed.>")
            await consumer.flush()
            await operator.flush()

            # The service publishes changes and heartbeats; consumers and operators receive them.
            await service.publish("hmr.v1.changed.clip", b"real")
            await service.publish("hmr.v1.heartbeat", b"beat")
            assert (await changes.next_msg(timeout=2)).data == b"real"
            assert (await beats.next_msg(timeout=2)).data == b"beat"
            assert (await watch.next_msg(timeout=2)).data == b"real"

            # A consumer cannot forge a change or a heartbeat: refused, and nobody receives it.
            await consumer.publish("hmr.v1.changed.x", b"forged")
            await consumer.publish("hmr.v1.heartbeat", b"forged")
            await consumer.flush()
            await _eventually(lambda: violations("consumer", "publish") >= 2)
            with pytest.raises(nats.errors.TimeoutError):
                await watch.next_msg(timeout=0.3)

            # The service answers snapshot and health requests (its replies are allowed responses).
            async def answer(msg: Any) -> None:
                await msg.respond(b"answer:" + msg.subject.encode())

            await service.subscribe("hmr.v1.snapshot.*", cb=answer)
            await service.subscribe("hmr.v1.health", cb=answer)
            await service.flush()
            assert await _answer(consumer, "hmr.v1.snapshot.clip") == b"answer:hmr.v1.snapshot.clip"
            assert await _answer(operator, "hmr.v1.health") == b"answer:hmr.v1.health"

            # Consumers may not ask for health, nor listen where the service answers.
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await consumer.request("hmr.v1.health", b"", timeout=0.5)
            await consumer.subscribe("hmr.v1.snapshot.*")
            await consumer.flush()
            await _eventually(lambda: violations("consumer", "subscription") >= 1)
            await _eventually(lambda: violations("consumer", "publish") >= 3)

            # The service publishes nowhere else.
            await service.publish("hmr.v1.snapshot.clip", b"x")
            await service.flush()
            await _eventually(lambda: violations("service", "publish") >= 1)

            # Each role reads its own replies only: a consumer cannot listen to every inbox, nor
            # to the operators' (an approver's change page is no business of a consumer's).
            subscriptions = violations("consumer", "subscription")
            await consumer.subscribe("_INBOX.>")
            await consumer.subscribe("_INBOX.operator.>")
            await consumer.flush()
            await _eventually(lambda: violations("consumer", "subscription") >= subscriptions + 2)
            await service.subscribe("hmr.v1.write.>", cb=answer)
            await service.flush()
            assert await _answer(operator, "hmr.v1.write.list") == b"answer:hmr.v1.write.list"
            assert not errors["operator"]
        finally:
            for client in (service, consumer, operator):
                await client.close()

        with pytest.raises(nats.errors.Error, match="(?i)authorization"):
            await nats.connect(
                url, user="hmr-consumer", password="wrong", allow_reconnect=False, connect_timeout=3
            )


def test_the_helm_values_grant_the_same_permissions_as_accounts_conf() -> None:
    (values,) = _load_yaml(K8S / "helm" / "nats-values.yaml")
    users = {user["user"]: user for user in values["config"]["merge"]["accounts"]["HMR"]["users"]}
    assert set(users) == {"hmr-service", "hmr-consumer", "hmr-operator"}
    conf = (DEPLOY / "nats" / "accounts.conf").read_text()
    for variable, user in (
        ("SERVICE", "hmr-service"),
        ("CONSUMER", "hmr-consumer"),
        ("OPERATOR", "hmr-operator"),
    ):
        block = re.search(rf"^{variable}_PERMISSIONS = \{{(.*?)^\}}", conf, re.MULTILINE | re.DOTALL)
        assert block is not None
        for kind in ("publish", "subscribe"):
            match = re.search(rf"{kind}: \{{ allow: \[(.*?)\] \}}", block[1])
            assert match is not None
            subjects = [s.strip().strip('"') for s in match[1].split(",")]
            assert users[user]["permissions"][kind]["allow"] == subjects, (user, kind)
        assert ("allow_responses: true" in block[1]) == bool(
            users[user]["permissions"].get("allow_responses")
        )
    env_names = set(values["container"]["env"])
    # `$name` outside quotes is a variable; "$JS.API.>" and the like are subjects
    assert env_names == {m[1:] for m in re.findall(r"(?<![\"\w])\$\w+", _render_helm_merge(values))}


# -- TLS, credentials and Redis, wired through the settings -------------------------------------


@pytest.mark.anyio
@pytest.mark.integration
async def test_redis_from_compose_speaks_tls_only_and_gives_consumers_read_access(certs: Path) -> None:
    port = free_port()
    with _process(_redis_command(certs, port), port, "redis-server"):
        ca = certs / "ca.pem"
        url = "rediss://{user}:{password}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        service = RedisSnapshotStore(
            url.format(user="hmr-service", password=PASSWORDS["REDIS_SERVICE_PASSWORD"], port=port, ca=ca)
        )
        consumer = RedisSnapshotStore(
            url.format(user="hmr-consumer", password=PASSWORDS["REDIS_CONSUMER_PASSWORD"], port=port, ca=ca)
        )
        snapshot = StoredSnapshot("clip", 3, "d" * 64, b'{"a": {}}')
        try:
            await service.put(snapshot)
            assert await consumer.get("clip") == snapshot
            with pytest.raises(BackendError, match="(?i)noperm|permission"):
                await consumer.put(snapshot)
        finally:
            await service.aclose()
            await consumer.aclose()
        plain = RedisSnapshotStore(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5, socket_timeout=0.5)
        try:
            with pytest.raises(BackendError):
                await plain.get("clip")
        finally:
            await plain.aclose()


def _role_env(role: str, nats_url: str, certs: Path, redis_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HORDE_MODEL_REFERENCE_NATS__URL", None)
    env |= {
        f"{ENV_PREFIX}NATS__URL": nats_url,
        f"{ENV_PREFIX}NATS__USER": f"hmr-{role}",
        f"{ENV_PREFIX}NATS__PASSWORD": PASSWORDS[f"HMR_{role.upper()}_PASSWORD"],
        f"{ENV_PREFIX}NATS__TLS_CA_FILE": str(certs / "ca.pem"),
        f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
    }
    env[f"{ENV_PREFIX}NATS__INBOX_PREFIX"] = f"_INBOX.{role}"
    if redis_url:
        env[f"{ENV_PREFIX}REDIS__URL"] = redis_url
    return env


@pytest.mark.integration
@pytest.mark.slow
def test_hmr_serve_and_the_example_consumer_run_over_tls_with_role_credentials(
    tmp_path: Path, certs: Path
) -> None:
    hmr = [sys.executable, "-m", "horde_model_reference.cli"]
    base = tmp_path / "base"
    redis_port = free_port()
    redis_args = _redis_command(certs, redis_port) if shutil.which("redis-server") else None

    def redis_url(role: str) -> str | None:
        if redis_args is None:
            return None
        password = PASSWORDS[f"REDIS_{role.upper()}_PASSWORD"]
        return f"rediss://hmr-{role}:{password}@127.0.0.1:{redis_port}/0?ssl_ca_certs={certs / 'ca.pem'}"

    with _nats_with_accounts(tmp_path, "compose", certs) as url, _optional_server(redis_args, redis_port):
        serve_args = [
            "serve",
            "--base-path",
            str(base),
            "--seed-from",
            str(REPO_ROOT / "examples" / "reference"),
        ]
        http_port = None if _hmr_rejects([*serve_args, "--http", "1"]) else free_port()
        if http_port is not None:
            serve_args += ["--http", str(http_port)]
        serve = subprocess.Popen(
            [*hmr, *serve_args],
            env=_role_env("service", url, certs, redis_url("service")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        consumer: subprocess.Popen[str] | None = None
        try:
            status = _wait_status(hmr, _role_env("operator", url, certs, None), serve)
            assert "clip" in status and "nats=up" in status
            if http_port is not None:  # the probes of deploy/k8s and the compose healthcheck
                _wait_port(http_port, serve, "hmr serve --http")  # may listen just after NATS answers
                for path in ("/api/health", "/api/ready"):
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=5) as answer:
                        assert answer.status == 200, path
            consumer = subprocess.Popen(
                [
                    sys.executable,
                    str(REPO_ROOT / "examples" / "consumer.py"),
                    "--exit-after",
                    "1",
                    "--timeout",
                    "20",
                ],
                env=_role_env("consumer", url, certs, redis_url("consumer")),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert consumer.stdout is not None
            lines = []
            for line in consumer.stdout:
                lines.append(line)
                if "following changes" in line:
                    break
            assert any("holding clip revision 1" in line for line in lines), lines
            clip = base / "clip.json"
            catalog = json.loads(clip.read_bytes())
            catalog[next(iter(catalog))]["description"] = "changed by the deploy test"
            clip.write_text(json.dumps(catalog, indent=4))
            output, _ = consumer.communicate(timeout=25)
            assert consumer.returncode == 0, [*lines, output]
            assert "clip revision 1 -> 2 (+0 -0 ~1)" in output

            # A consumer's credentials cannot ask the service for its health.
            denied = subprocess.run(
                [*hmr, "status", "--timeout", "1"],
                env=_role_env("consumer", url, certs, None),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert denied.returncode == 1
        finally:
            if consumer is not None and consumer.poll() is None:
                consumer.kill()
                consumer.wait()
            serve.send_signal(signal.SIGTERM)
            try:
                _, stderr = serve.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                serve.kill()
                _, stderr = serve.communicate()
        assert serve.returncode == 0, stderr[-2000:]


@contextlib.contextmanager
def _optional_server(args: list[str] | None, port: int) -> Iterator[None]:
    """Run `args` as a server on `port` when given, else nothing."""
    if args is None:
        yield
        return
    with _process(args, port, args[0]):
        yield


def _wait_status(hmr: list[str], env: dict[str, str], serve: subprocess.Popen[str]) -> str:
    """`hmr status` as the operator, once the service answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise AssertionError(f"hmr serve exited: {serve.stderr.read() if serve.stderr else ''}")
        result = subprocess.run([*hmr, "status", "--timeout", "1"], env=env, capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.3)
    raise AssertionError("hmr serve never answered `hmr status`")


# -- compose ------------------------------------------------------------------------------------


def test_compose_has_the_cluster_redis_the_primary_and_two_consumers() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "redis", "hmr", "consumer-1", "consumer-2", "certs"} == set(
        services
    )
    for name in ("nats-1", "nats-2", "nats-3"):
        node = services[name]
        assert node["command"] == ["-c", "/etc/nats/cluster.conf"]
        assert node["environment"]["SERVER_NAME"] == name
        assert "./nats:/etc/nats:ro" in node["volumes"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in compose["volumes"], source
    hmr = services["hmr"]
    assert hmr["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / hmr["build"]["context"] / hmr["build"]["dockerfile"]).is_file()
    assert "/api/ready" in " ".join(hmr["healthcheck"]["test"])
    for consumer in ("consumer-1", "consumer-2"):
        assert services[consumer]["entrypoint"] == ["python", "/app/examples/consumer.py"]
    assert hmr["command"][0] == "serve"
    _parse_hmr(hmr["command"])


def test_compose_environment_names_are_real_settings_and_load() -> None:
    compose = _compose()
    used = set(_COMPOSE_VARIABLE.findall(json.dumps(compose)))
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert {name for name, _, _ in used} <= set(example)
    for name in ("hmr", "consumer-1", "consumer-2"):
        environment = {
            k: _interpolate(str(v), PASSWORDS) for k, v in compose["services"][name]["environment"].items()
        }
        unknown = {k for k in environment if k.startswith(ENV_PREFIX)} - KNOWN_VARIABLES
        assert not unknown, f"{name}: not settings: {unknown}"
        settings = load_settings(environment)
        assert settings.nats.url and settings.nats.url.startswith("tls://")
        assert settings.nats.tls_ca_file == "/certs/ca.pem"
        assert settings.nats.user in {"hmr-service", "hmr-consumer"}
        assert settings.redis.url and settings.redis.url.startswith("rediss://hmr-")


# -- Kubernetes ---------------------------------------------------------------------------------


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in _load_yaml(path):
            assert {"apiVersion", "kind"} <= set(document), path
            name = document.get("metadata", {}).get("name", path.stem)
            found[(document["kind"], name)] = document
    return found


def test_kubernetes_manifests_are_complete_and_consistent() -> None:
    manifests = _k8s()
    kustomization = manifests[("Kustomization", "kustomization")]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    deployment = manifests[("Deployment", "hmr")]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/api/health"
    assert "http" in ports and container["args"][container["args"].index("--http") + 1] == str(ports["http"])
    service = manifests[("Service", "hmr")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = manifests[("PodDisruptionBudget", "hmr")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert ("PersistentVolumeClaim", "hmr-data") in manifests

    # Every ConfigMap, Secret and volume the pod names exists (secrets in secret.example.yaml).
    for source in container["envFrom"]:
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        assert (kind, ref["name"]) in manifests
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    for volume in pod["spec"]["volumes"]:
        assert volume["name"] in mounts
        if "secret" in volume:
            assert ("Secret", volume["secret"]["secretName"]) in manifests
        if "persistentVolumeClaim" in volume:
            assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in manifests

    # The settings they set are real, load, and point at files the pod mounts.
    environment = dict(manifests[("ConfigMap", "hmr-settings")]["data"])
    environment |= manifests[("Secret", "hmr-secrets")]["stringData"]
    assert set(environment) <= KNOWN_VARIABLES, set(environment) - KNOWN_VARIABLES
    settings = load_settings(environment)
    assert settings.nats.url and settings.nats.url.startswith("tls://")
    assert settings.redis.url and settings.redis.url.startswith("rediss://")
    for path in (settings.nats.tls_ca_file, settings.redis.url.split("ssl_ca_certs=")[1]):
        assert path and any(path.startswith(mount + "/") for mount in mounts.values()), path
    _parse_hmr(container["args"])


def test_the_helm_values_name_the_charts_the_readme_installs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for values in ("nats-values.yaml", "redis-values.yaml"):
        assert _load_yaml(K8S / "helm" / values)
        assert f"deploy/k8s/helm/{values}" in readme
    assert "nats/nats" in readme and "bitnamicharts/redis" in readme


# -- Docker -------------------------------------------------------------------------------------


def test_the_dockerfile_copies_files_that_exist_and_runs_hmr() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY") and "--from" not in line]
    sources = [source for sources in copies for source in sources]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in sources:
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), source
    assert 'ENTRYPOINT ["hmr"]' in lines
    (cmd,) = [line for line in lines if line.startswith("CMD")]
    _parse_hmr(json.loads(cmd[len("CMD") :]))
