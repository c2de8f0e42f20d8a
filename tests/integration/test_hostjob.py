"""The host renewal job, run as the timer runs it: /usr/bin/python3 with the
distribution's cryptography and requests, no Ansible, against the real lab."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.lab import Lab, count_orders

ROOT = Path(__file__).resolve().parents[2]
DISTRO_PYTHON = "/usr/bin/python3"


def served_serial(port: int, name: str, cafile: str) -> str:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    import socket

    from cryptography import x509

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, ctx.wrap_socket(sock, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "X")


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """The installed layout of the renewal_timer role: module_utils under ansible_collections/."""
    tree = tmp_path / "lib" / "ansible_collections" / "tlsops" / "haproxy_acme" / "plugins"
    shutil.copytree(ROOT / "plugins" / "module_utils", tree / "module_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "lib"), "LC_ALL": "C.UTF-8"}


def run_job(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    python = DISTRO_PYTHON if Path(DISTRO_PYTHON).exists() else sys.executable
    return subprocess.run(
        [python, "-c", "import sys; from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._hostjob import main; sys.exit(main())",
         "--config", str(config), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_host_job_issues_renews_and_hot_loads(make_lab, job_env: dict[str, str], tmp_path: Path) -> None:
    lab: Lab = make_lab()
    info = lab.info
    assert info is not None
    # The account must exist before the job runs (site creates it); terms agreed here.
    config = {
        "version": 1,
        "directory": info.acme_directory,
        "ca_path": info.acme_ca_path,
        "account_key_path": info.lab_account_key_path,
        "terms_agreed": True,
        "certificates": [{"name": "job.example", "domains": ["job.example", "www.job.example"], "key_type": "ec256"}],
        "remaining_days": 30,
        "cert_dir": info.lab_cert_dir,
        "crt_list": info.lab_cert_dir,
        "socket": info.lab_socket,
        "mode": "0640",
    }
    path = tmp_path / "renew.json"
    path.write_text(json.dumps(config))
    pid = lab.haproxy_pid()

    dry = run_job(job_env, path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "job.example: issued" in dry.stdout
    assert not (Path(info.lab_cert_dir) / "job.example.pem").exists()

    first = run_job(job_env, path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "job.example: issued" in first.stdout and "haproxy: created" in first.stdout
    serial1 = served_serial(info.lab_https_port, "www.job.example", info.pebble_root_path)
    assert f"serial={serial1}" in first.stdout.replace("serial=0", "serial=")

    again = run_job(job_env, path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "job.example: unchanged" in again.stdout and "haproxy: unchanged" in again.stdout

    forced = run_job(job_env, path, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "job.example: renewed" in forced.stdout and "haproxy: updated" in forced.stdout
    serial2 = served_serial(info.lab_https_port, "job.example", info.pebble_root_path)
    assert serial2 != serial1
    assert lab.haproxy_pid() == pid
    assert oct(os.stat(Path(info.lab_cert_dir) / "job.example.pem").st_mode & 0o777) == "0o640"


def test_host_job_bad_config_exit_2(job_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "renew.json"
    path.write_text('{"version": 1}')
    proc = run_job(job_env, path)
    assert proc.returncode == 2
    assert "missing directory, account_key_path, certificates, cert_dir, socket" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_job_and_a_playbook_run_take_turns(make_lab, job_env: dict[str, str], tmp_path: Path) -> None:
    """The timer's job and acme_stateless_order (as site/renew run it on the host) start at once on
    one certificate directory: one orders, the other waits for the lock and finds nothing due."""
    lab: Lab = make_lab()
    info = lab.info
    assert info is not None
    certificates = [{"name": f"turn{i}.example", "domains": [f"turn{i}.example"]} for i in range(5)]
    common = {"directory": info.acme_directory, "ca_path": info.acme_ca_path,
              "account_key_path": info.lab_account_key_path, "terms_agreed": True,
              "certificates": certificates, "cert_dir": info.lab_cert_dir}
    config = tmp_path / "renew.json"
    config.write_text(json.dumps({"version": 1, **common, "crt_list": info.lab_cert_dir, "socket": info.lab_socket}))
    module_args = tmp_path / "args.json"
    module_args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": common}))
    before = count_orders(lab.pebble_log())
    python = DISTRO_PYTHON if Path(DISTRO_PYTHON).exists() else sys.executable
    job = subprocess.Popen(
        [python, "-c", "import sys; from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._hostjob import main; sys.exit(main())",
         "--config", str(config)], env=job_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    module = subprocess.Popen(
        [sys.executable, "-m", "ansible_collections.tlsops.haproxy_acme.plugins.modules.acme_stateless_order",
         str(module_args)], env={**os.environ, "PYTHONPATH": str(ROOT / "build" / "collections")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job_out, _ = job.communicate(timeout=120)
    module_out, _ = module.communicate(timeout=120)
    assert job.returncode == 0, job_out
    assert module.returncode == 0, module_out
    actions = sorted(c["action"] for c in json.loads(module_out)["certificates"])
    job_actions = sorted(line.split(": ")[1].split(" ")[0] for line in job_out.splitlines() if line.startswith("turn"))
    # Whichever came first issued all five; the other found them valid.
    assert sorted([actions, job_actions]) == [["issued"] * 5, ["unchanged"] * 5], (job_out, module_out)
    assert count_orders(lab.pebble_log()) - before == 5


def test_host_job_writes_metrics_after_every_run(make_lab, job_env: dict[str, str], tmp_path: Path) -> None:
    """node_exporter's textfile collector gets the run's metrics (docs/metrics.md), parsed here
    by Prometheus' own parser: after an issuing run, and after a run that finds the CA down."""
    from cryptography import x509
    # The Debian 13 lab node (trixie_lab stage) has no prometheus_client: the integration stage runs this.
    text_string_to_metric_families = pytest.importorskip("prometheus_client.parser").text_string_to_metric_families

    def metrics() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
                for f in text_string_to_metric_families(prom.read_text())}

    lab: Lab = make_lab()
    info = lab.info
    assert info is not None
    textfile = tmp_path / "node-exporter"
    textfile.mkdir()
    prom = textfile / "haproxy_acme.prom"
    config = {"version": 1, "directory": info.acme_directory, "ca_path": info.acme_ca_path,
              "account_key_path": info.lab_account_key_path, "terms_agreed": True, "request_timeout": 2,
              "certificates": [{"name": "metrics.example", "domains": ["metrics.example"]}],
              "cert_dir": info.lab_cert_dir, "crt_list": info.lab_cert_dir, "socket": info.lab_socket,
              "metrics_path": str(prom)}
    path = tmp_path / "renew.json"
    path.write_text(json.dumps(config))
    name = (("name", "metrics.example"),)

    before = time.time()
    first = run_job(job_env, path)
    assert first.returncode == 0, first.stdout + first.stderr
    bundle = Path(info.lab_cert_dir) / "metrics.example.pem"
    leaf = x509.load_pem_x509_certificate(bundle.read_bytes())
    found = metrics()
    not_after = leaf.not_valid_after_utc.timestamp()
    assert found["haproxy_acme_certificate_not_after_timestamp_seconds"] == {name: not_after}
    assert found["haproxy_acme_certificate_not_before_timestamp_seconds"] == {name: leaf.not_valid_before_utc.timestamp()}
    # Fixed when the run ended, so a little more than what is left now.
    assert 0 < found["haproxy_acme_certificate_validity_remaining_seconds"][name] - (not_after - time.time()) < 60
    assert found["haproxy_acme_certificate_last_renewal_timestamp_seconds"] == {name: bundle.stat().st_mtime}
    results = {dict(k)["result"]: v for k, v in found["haproxy_acme_certificate_last_result"].items()}
    assert results == {"issued": 1.0, "renewed": 0.0, "unchanged": 0.0, "failed": 0.0}
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "standalone"),): 1.0}
    assert before <= found["haproxy_acme_renewal_run_start_timestamp_seconds"][(("topology", "standalone"),)] <= time.time()
    assert 0 < found["haproxy_acme_renewal_run_duration_seconds"][(("topology", "standalone"),)] < time.time() - before
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in textfile.iterdir()] == ["haproxy_acme.prom"], "a temporary file was left behind"
    text = prom.read_text()
    assert "PRIVATE" not in text and "/acme/acct/" not in text and info.acme_directory not in text

    dry = run_job(job_env, path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert prom.read_text() == text, "a dry run leaves the metrics alone"

    lab.stop_pebble()
    down = run_job(job_env, path, "--force")
    assert down.returncode == 1, down.stdout + down.stderr
    found = metrics()
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "standalone"),): 0.0}
    results = {dict(k)["result"]: v for k, v in found["haproxy_acme_certificate_last_result"].items()}
    assert results == {"issued": 0.0, "renewed": 0.0, "unchanged": 0.0, "failed": 1.0}
    # The certificate still served keeps its expiry: an alert on it stays right while the CA is down.
    assert found["haproxy_acme_certificate_not_after_timestamp_seconds"] == {name: not_after}
    assert found["haproxy_acme_renewal_run_duration_seconds"][(("topology", "standalone"),)] > 0
