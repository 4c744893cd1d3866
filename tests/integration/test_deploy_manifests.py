"""deploy/: every Kubernetes overlay rendered by a real kustomize and
validated by kubeconform against the Kubernetes schemas (and the KEDA and
Strimzi CRDs), then read for what the schemas cannot know: probes on the
right paths and ports, grace periods that cover the drain, disruption
budgets and Services that select their pods, configuration that names only
variables the binaries read, one overlay per region wired to that region's
topic, the topics the code uses, the time zone map loaded at install from
where the image ships it; the alert rules through promtool; the container
image's runtime packages against what the binaries link.
Tools and schemas come from deploy/local/install-deps.sh (into .local)."""
import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import BUILD, ROOT, plain_build, wait_until

LOCAL = os.path.join(ROOT, ".local")
BIN = os.path.join(LOCAL, "bin")
SCHEMAS = os.path.join(LOCAL, "k8s-schemas")
K8S_VERSION = "1.33.0"
REGIONS = ["us", "eu", "apac"]
K8S = os.path.join(ROOT, "deploy", "k8s")
# Where deploy/Containerfile puts libphonenumber's prefix-to-zone map.
TZ_MAP = "/usr/share/batchcall/tz-prefixes.txt"
PROCS = {"api": ("batchcall-api", "BC_API_PORT"), "worker": ("batchcall-worker", "BC_WORKER_PORT"),
         "scheduler": ("batchcall-scheduler", "BC_SCHEDULER_PORT")}


def tool(name):
    path = os.path.join(BIN, name)
    assert os.access(path, os.X_OK), f"{path} missing: run deploy/local/install-deps.sh"
    return path


def kustomize(path):
    out = subprocess.run([tool("kustomize"), "build", path], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


def kubeconform(*paths, text=None):
    """Validates rendered manifests (files, or text on stdin); every
    resource must have a schema. Returns the exit code and the JSON report,
    which lists every resource (-verbose) with the file it came from."""
    r = subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-verbose", "-output", "json",
         "-kubernetes-version", K8S_VERSION,
         "-schema-location", os.path.join(SCHEMAS, "{{ .NormalizedKubernetesVersion }}-local"
                                          "{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"),
         "-schema-location", os.path.join(SCHEMAS, "crds", "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
         *(paths or ["-"])], input=text, capture_output=True, text=True, timeout=120)
    report = json.loads(r.stdout)
    return r.returncode, report


def config_keys(binary):
    """The BC_* variables a binary reads: its config table, via --help."""
    out = subprocess.run([os.path.join(BUILD, binary), "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    return set(re.findall(r"\b(BC_[A-Z0-9_]+)\b", out))


@pytest.fixture(scope="module")
def rendered():
    out = {r: kustomize(os.path.join(K8S, "overlays", r)) for r in REGIONS}
    out["kafka"] = kustomize(os.path.join(K8S, "kafka"))
    return out


@pytest.fixture(scope="module")
def validated(rendered, tmp_path_factory):
    """One kubeconform run over every rendering (schemas load once)."""
    d = tmp_path_factory.mktemp("rendered")
    for name, (text, _) in rendered.items():
        (d / f"{name}.yaml").write_text(text)
    rc, report = kubeconform(*[str(d / f"{n}.yaml") for n in rendered])
    return rc, report["resources"]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_one_overlay_per_region_and_no_other():
    assert sorted(os.listdir(os.path.join(K8S, "overlays"))) == sorted(REGIONS)


@pytest.mark.parametrize("name", REGIONS + ["kafka"])
def test_rendered_manifests_are_valid_against_the_schemas(rendered, validated, name):
    rc, resources = validated
    mine = [r for r in resources if os.path.basename(r["filename"]) == f"{name}.yaml"]
    bad = [r for r in mine if r["status"] != "statusValid"]
    assert not bad, json.dumps(bad, indent=1)
    docs = rendered[name][1]
    # Every resource was validated, none skipped for want of a schema: the
    # CRDs (ScaledObject, KafkaTopic) were checked too.
    assert len(mine) == len(docs), (len(mine), len(docs))
    kinds = {d["kind"] for d in docs}
    if name == "kafka":
        assert kinds == {"KafkaTopic"}
    else:
        assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject",
                "Namespace"} <= kinds


def test_the_validator_ran_clean(validated):
    rc, resources = validated
    assert rc == 0 and resources, resources


def test_the_validator_rejects_a_broken_manifest(rendered):
    """kubeconform here really checks fields, core and CRD alike: three
    manifests, each broken once, are each found invalid."""
    us, kafka = rendered["us"][0], rendered["kafka"][0]
    bad = [us.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:", 1),
           us.replace("minReplicaCount:", "minReplicas:", 1),
           kafka.replace("partitions: 12", "partitions: 0", 1)]
    assert bad[0] != us and bad[1] != us and bad[2] != kafka
    rc, report = kubeconform(text="\n---\n".join(bad))
    assert rc != 0 and report["summary"]["invalid"] == 3, report["summary"]
    invalid = sorted(r["kind"] for r in report["resources"] if r["status"] == "statusInvalid")
    assert invalid == ["Deployment", "KafkaTopic", "ScaledObject"], invalid


@pytest.mark.parametrize("region", REGIONS)
def test_deployments_probes_resources_grace_and_budgets(rendered, region):
    docs = rendered[region][1]
    deps, pdbs, svcs = by_kind(docs, "Deployment"), by_kind(docs, "PodDisruptionBudget"), \
        by_kind(docs, "Service")
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    assert set(deps) == {f"batchcall-{p}" for p in PROCS}
    images = set()
    for proc, (binary, port_env) in PROCS.items():
        d = deps[f"batchcall-{proc}"]
        assert d["metadata"]["namespace"] == f"batchcall-{region}"
        pod = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in d["spec"]["selector"]["matchLabels"].items())
        (c,) = pod["containers"]
        assert c["command"] == [binary]
        images.add(c["image"])
        env = {}
        for src in c["envFrom"]:
            if "configMapRef" in src:
                env.update(cms[src["configMapRef"]["name"]])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        # The probes hit the process's own port, on the paths it serves.
        assert int(env[port_env]) == ports["http"]
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        ann = d["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/port"] == str(ports["http"]) and ann["prometheus.io/path"] == "/metrics"
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory"}, (proc, kind)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert env["BC_HTTP_BIND"] == "0.0.0.0"
        assert {"secretRef": {"name": "batchcall-secrets"}} in c["envFrom"]
        grace = pod["terminationGracePeriodSeconds"]
        if proc == "worker":
            # The grace period is the drain plus 10 s to close the consumers.
            assert grace == int(env["BC_DRAIN_MS"]) // 1000 + 10, (grace, env["BC_DRAIN_MS"])
            assert "replicas" not in d["spec"], "KEDA owns the worker's replica count"
        elif proc == "scheduler":
            # Webhook requests in flight, then the producer's flush (5 s).
            assert grace >= int(env["BC_WEBHOOK_TIMEOUT_MS"]) // 1000 + 5 + 5
            assert d["spec"]["replicas"] >= 2, "a standby to take the lead"
        else:
            stop = c["lifecycle"]["preStop"]["exec"]["command"]
            assert stop[0] == "sleep"
            # preStop, requests in flight (the idle timeout), producer flush.
            assert grace >= int(stop[1]) + int(env["BC_API_IDLE_TIMEOUT"]) + 5
            # Installed before the API serves: the schema, then the time
            # zone map calling hours read (tz_prefixes), from the image.
            inits = pod["initContainers"]
            assert [i["command"] for i in inits] == [
                ["batchcall", "migrate"], ["batchcall", "tz-load", "--file", TZ_MAP]]
            for i in inits:
                assert i["image"] == c["image"]
                assert {"secretRef": {"name": "batchcall-secrets"}} in i["envFrom"]
                assert i["securityContext"]["readOnlyRootFilesystem"] is True
        # A budget and a Service select exactly these pods.
        pdb = pdbs[f"batchcall-{proc}"]
        assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
        assert "maxUnavailable" in pdb["spec"] or pdb["spec"]["minAvailable"] < d["spec"].get("replicas", 2)
        svc = svcs[f"batchcall-{proc}"]
        assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
        assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert len(images) == 1, images


@pytest.mark.parametrize("region", REGIONS)
def test_configuration_names_only_variables_the_binaries_read(rendered, region):
    docs = rendered[region][1]
    known = {p: config_keys(b) for p, (b, _) in PROCS.items()}
    assert all(len(k) > 8 for k in known.values()), known
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    readers = {}
    for d in by_kind(docs, "Deployment").values():
        proc = d["metadata"]["name"].split("-", 1)[1]
        for src in d["spec"]["template"]["spec"]["containers"][0]["envFrom"]:
            if "configMapRef" in src:
                readers.setdefault(src["configMapRef"]["name"], set()).add(proc)
    assert set(readers) == set(cms), (readers, list(cms))
    for name, data in cms.items():
        for key in data:
            assert any(key in known[p] for p in readers[name]), \
                f"{name} sets {key}, which none of {sorted(readers[name])} reads"
    config = next(v for k, v in cms.items() if k.startswith("batchcall-config"))
    assert config["BC_REGION"] == region
    assert region in config["BC_REGIONS"].split(",")
    # Secrets stay out of ConfigMaps.
    for data in cms.values():
        assert not {"BC_PG_DSN", "BC_CARRIER_AUTH_TOKEN", "BC_AGENT_TOKEN_SECRET"} & set(data)


@pytest.mark.parametrize("region", REGIONS)
def test_workers_scale_on_their_regions_consumer_lag(rendered, region):
    docs = rendered[region][1]
    (so,) = by_kind(docs, "ScaledObject").values()
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    config = next(v for k, v in cms.items() if k.startswith("batchcall-config"))
    assert so["spec"]["scaleTargetRef"]["name"] == "batchcall-worker"
    (trig,) = so["spec"]["triggers"]
    prefix = config["BC_TOPIC_PREFIX"]
    assert trig["type"] == "kafka"
    # The worker's own names (bc_worker.c): <prefix>.jobs.<region> read by
    # the group <prefix>.worker.jobs.<region>.
    assert trig["metadata"]["topic"] == f"{prefix}.jobs.{region}"
    assert trig["metadata"]["consumerGroup"] == f"{prefix}.worker.jobs.{region}"
    assert trig["metadata"]["bootstrapServers"] == config["BC_KAFKA_BROKERS"]
    assert int(trig["metadata"]["lagThreshold"]) > 0
    topics = by_kind(rendered["kafka"][1], "KafkaTopic")
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] \
        <= topics[f"{prefix}.jobs.{region}"]["spec"]["partitions"]


def test_kafka_topics_are_the_ones_the_code_creates(stack, rendered):
    """`batchcall topics` names what the processes use; the KafkaTopic
    resources must be exactly those, with the production prefix."""
    made = stack.cli("topics", "--regions", ",".join(REGIONS))["topics"]
    want = {t.replace(stack.prefix + ".", "batchcall.", 1) for t in made}
    topics = by_kind(rendered["kafka"][1], "KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics.values()} == want
    assert {"batchcall.call-results", "batchcall.jobs.eu", "batchcall.carrier-events.apac"} <= want
    for t in topics.values():
        assert t["metadata"]["labels"]["strimzi.io/cluster"]
        assert t["spec"]["replicas"] > t["spec"]["config"]["min.insync.replicas"] - 1


def test_the_carrier_events_get_their_own_partition_count(stack, rendered):
    """`batchcall topics` gives each region's carrier events
    --events-partitions (3 unless set) and every other topic --partitions:
    keyed by call, a linger's events go out in one request per partition,
    so fewer of them cost less on every call (docs/operations.md). The
    deployed topics make the same choice."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": stack.brokers})

    def made(prefix, *args):
        names = stack.cli("topics", "--topic-prefix", prefix, "--regions", "us,eu", *args)["topics"]

        # A new topic reaches the broker's metadata a moment after its create.
        def listed():
            md = admin.list_topics(timeout=10).topics
            return md if all(n in md for n in names) else None
        md = wait_until(listed, 10, "the new topics in the metadata")
        return {n[len(prefix) + 1:]: len(md[n].partitions) for n in names}

    # Under this stack's prefix: its topics are dropped with it.
    assert made(f"{stack.prefix}.p5", "--partitions", "5", "--events-partitions", "2") == {
        "call-results": 5, "webhooks-dlq": 5, "jobs.us": 5, "jobs.eu": 5,
        "carrier-events.us": 2, "carrier-events.eu": 2}
    assert made(f"{stack.prefix}.p7", "--partitions", "7") == {
        "call-results": 7, "webhooks-dlq": 7, "jobs.us": 7, "jobs.eu": 7,
        "carrier-events.us": 3, "carrier-events.eu": 3}
    r = subprocess.run([stack.bin("batchcall"), "topics", "--topic-prefix", f"{stack.prefix}.p0",
                        "--events-partitions", "0"], env=stack.env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "--events-partitions" in r.stdout + r.stderr, r
    assert not [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{stack.prefix}.p0.")]
    topics = {t["spec"]["topicName"]: t["spec"]["partitions"]
              for t in by_kind(rendered["kafka"][1], "KafkaTopic").values()}
    for region in REGIONS:
        assert topics[f"batchcall.carrier-events.{region}"] == 3
        assert topics[f"batchcall.jobs.{region}"] == 12


def test_alert_rules_pass_promtool_check_and_unit_tests():
    d = os.path.join(ROOT, "deploy", "prometheus")
    for args in (["check", "rules", "batchcall-rules.yaml"], ["test", "rules", "batchcall-rules.test.yaml"]):
        r = subprocess.run([tool("promtool"), *args], cwd=d, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_ships_the_time_zone_map_the_init_container_loads():
    """A build stage makes the map with Debian's phonenumbers and
    deploy/tz-prefixes.py; the runtime stage (no Python) copies it to
    TZ_MAP, which the API's tz-load init container reads."""
    with open(os.path.join(ROOT, "deploy", "Containerfile")) as f:
        stages = re.split(r"^FROM ", f.read(), flags=re.M)[1:]
    (tzmap,) = [st for st in stages if st.split("\n", 1)[0].endswith(" AS tzmap")]
    assert re.search(r"apt-get install .*\bpython3-phonenumbers\b", tzmap, re.S)
    assert "COPY deploy/tz-prefixes.py /tz-prefixes.py" in tzmap
    assert "python3 /tz-prefixes.py > /tz-prefixes.txt" in tzmap
    runtime = stages[-1]
    assert runtime.startswith("debian:bookworm-slim\n"), "the runtime stage is the last"
    assert f"COPY --from=tzmap /tz-prefixes.txt {TZ_MAP}\n" in runtime
    assert "python3" not in runtime


@plain_build   # sanitized builds link the sanitizer runtimes too
def test_container_runtime_stage_installs_every_library_the_binaries_link():
    with open(os.path.join(ROOT, "deploy", "Containerfile")) as f:
        text = f.read()
    runtime = text.split("# BEGIN runtime packages", 1)[1].split("# END runtime packages", 1)[0]
    pkgs = set(re.findall(r"\b(lib[a-z0-9.+-]+|ca-certificates)\b", runtime))
    built = re.findall(r"/build/(batchcall[a-z-]*)", text.split("FROM debian:bookworm-slim\n")[-1])
    assert sorted(set(built)) == ["batchcall", "batchcall-api", "batchcall-scheduler", "batchcall-worker"]
    # Libraries of the base image itself (libc, libgcc, ...) need no package.
    base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1", "liblz4-1", "libsystemd0",
            "libgcrypt20", "libgpg-error0", "liblzma5", "libcap2", "libselinux1", "libpcre2-8-0"}
    needed = {}   # library path -> the binaries that link it directly
    for b in set(built):
        ldd = subprocess.run(["ldd", os.path.join(BUILD, b)], capture_output=True, text=True,
                             check=True).stdout
        direct = subprocess.run(["readelf", "-d", os.path.join(BUILD, b)], capture_output=True,
                                text=True, check=True).stdout
        names = set(re.findall(r"Shared library: \[([^\]]+)\]", direct))
        # A library pulled in by another one comes with that one's package.
        for lib in re.findall(r"=> (/\S+)", ldd):
            if os.path.basename(lib) in names:
                needed.setdefault(os.path.realpath(lib), set()).add(b)
    # Debian registers some libraries under /lib, which is /usr/lib: ask both.
    queries = set(needed) | {p.replace("/usr/lib/", "/lib/", 1) for p in needed}
    out = subprocess.run(["dpkg", "-S", *sorted(queries)], capture_output=True, text=True).stdout
    owners = {}
    for line in out.splitlines():
        pkg, path = line.split(": ", 1)
        owners[path] = pkg.split(":", 1)[0]
    for lib, binaries in needed.items():
        pkg = owners.get(lib) or owners.get(lib.replace("/usr/lib/", "/lib/", 1))
        assert pkg, f"no Debian package owns {lib}"
        assert pkg in pkgs or pkg in base, \
            f"{sorted(binaries)} link {lib} from {pkg}, not in the runtime stage"
