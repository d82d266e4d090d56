#!/usr/bin/env python3
"""Tests of deploy/validate.py: the real manifests and Dockerfiles pass, and a broken copy of
them (written to a temporary folder) fails for each class of error, naming the field.
Also parses the step scripts with `bash -n` (and shellcheck where installed).

  python3 deploy/test_validate.py        (from any folder; exit status non-zero on failure)
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
sys.path.insert(0, str(DEPLOY))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import validate  # noqa: E402  (needs the path above)
import yaml  # noqa: E402

K8S = DEPLOY / "k8s"


def load(name):
    return list(yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")))


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def problems_of(self, name, text):
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return validate.validate_paths([path])[0]

    def mutated(self, name, change):
        """Problems of manifest `name` after change(document 0)."""
        docs = load(name)
        change(docs[0])
        return self.problems_of(name, yaml.safe_dump_all(docs, sort_keys=False))

    def assertProblem(self, problems, *fragments):
        for problem in problems:
            if all(f in problem for f in fragments):
                return
        self.fail(f"no problem containing {fragments}; got:\n  " + "\n  ".join(problems))


class RealFiles(Case):
    def test_everything_under_deploy_is_valid(self):
        problems, count = validate.validate_paths(
            [K8S] + sorted(p for p in DEPLOY.glob("Dockerfile*") if validate._is_dockerfile(p)))
        self.assertEqual(problems, [])
        self.assertGreaterEqual(count, 6)

    def test_yaml_round_trip_keeps_them_valid(self):
        # The mutation tests below rewrite manifests through PyYAML: the untouched rewrite
        # must pass, so that each failure below comes from its mutation alone.
        for path in sorted(K8S.glob("*.yaml")):
            docs = load(path.name)
            self.assertEqual(self.problems_of(path.name, yaml.safe_dump_all(docs)), [], path.name)

    def test_command_line(self):
        ok = subprocess.run([sys.executable, str(DEPLOY / "validate.py")], cwd="/",
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        pod = load("pod.yaml")[0]
        container = pod["spec"]["containers"][0]
        container["volumeMount"] = container.pop("volumeMounts")
        (self.dir / "pod.yaml").write_text(yaml.safe_dump(pod), encoding="utf-8")
        bad = subprocess.run([sys.executable, str(DEPLOY / "validate.py"), str(self.dir)],
                             cwd="/", capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stdout.splitlines(), [
            f"{self.dir / 'pod.yaml'}: doc 0: spec.containers[0].volumeMount: unknown field "
            "(did you mean volumeMounts?)"])


class PodErrors(Case):
    def container(self, change):
        return self.mutated("pod.yaml", lambda d: change(d["spec"]["containers"][0]))

    def test_unknown_field(self):
        p = self.container(lambda c: c.update(volumeMount=c.pop("volumeMounts")))
        self.assertProblem(p, "spec.containers[0].volumeMount: unknown field", "volumeMounts?")

    def test_mount_of_undefined_volume(self):
        p = self.container(lambda c: c["volumeMounts"][1].update(name="dshm"))
        self.assertProblem(p, 'spec.containers[0].volumeMounts[1].name "dshm": no such volume')

    def test_required_field(self):
        self.assertProblem(self.container(lambda c: c.pop("image")),
                           "spec.containers[0].image: required field missing")
        self.assertProblem(self.mutated("pod.yaml", lambda d: d.pop("spec")),
                           "spec: required field missing")
        self.assertProblem(self.mutated("pod.yaml", lambda d: d["spec"].update(containers=[])),
                           "spec.containers: needs at least 1 item(s)")

    def test_image(self):
        self.assertProblem(self.container(lambda c: c.update(image="")),
                           'spec.containers[0].image "": must not be empty')
        self.assertProblem(self.container(lambda c: c.update(image="REGISTRY/llama lora")),
                           "spec.containers[0].image", "not an image reference")

    def test_types(self):
        p = self.container(lambda c: c["env"][0].update(value=8))
        self.assertProblem(p, "spec.containers[0].env[0].value 8: expected a string", 'quote it')
        p = self.mutated("pod.yaml", lambda d: d["metadata"]["labels"].update(training=True))
        self.assertProblem(p, "metadata.labels.training true: expected a string")
        p = self.mutated("pod.yaml", lambda d: d["spec"].update(tolerations={"key": "x"}))
        self.assertProblem(p, "spec.tolerations: expected a list, got a mapping")

    def test_quantities(self):
        p = self.container(lambda c: c["resources"]["limits"].update(memory="8GB"))
        self.assertProblem(p, 'spec.containers[0].resources.limits.memory "8GB": not a quantity')
        p = self.container(lambda c: c["resources"]["limits"].update(memory="512m"))
        self.assertProblem(p, "resources.limits.memory", "millibytes")
        p = self.container(lambda c: c["resources"]["requests"].update(memory="2000Gi"))
        self.assertProblem(p, "resources.requests.memory", "request exceeds the limit 1000Gi")
        p = self.mutated("pod.yaml", lambda d: d["spec"]["volumes"][1]["emptyDir"].update(
            sizeLimit="64 Gi"))
        self.assertProblem(p, 'spec.volumes[1].emptyDir.sizeLimit "64 Gi": not a quantity')

    def test_gpu_counts(self):
        def half(c):
            c["resources"]["requests"]["nvidia.com/gpu"] = "0.5"
            c["resources"]["limits"]["nvidia.com/gpu"] = "0.5"
        self.assertProblem(self.container(half), 'resources.limits["nvidia.com/gpu"] "0.5"',
                           "whole number")
        p = self.container(lambda c: c["resources"]["requests"].update({"nvidia.com/gpu": 4}))
        self.assertProblem(p, 'resources.requests["nvidia.com/gpu"] 4', "must equal its limit")
        p = self.container(lambda c: c["resources"]["limits"].update(gpu=1))
        self.assertProblem(p, "resources.limits.gpu: unknown resource name", "nvidia.com/gpu")

    def test_names(self):
        p = self.mutated("pod.yaml", lambda d: d["metadata"].update(name="Llama_LoRA"))
        self.assertProblem(p, 'metadata.name "Llama_LoRA": not a DNS-1123 subdomain')
        p = self.container(lambda c: c.update(name="llama.lora"))
        self.assertProblem(p, 'spec.containers[0].name "llama.lora": not a DNS-1123 label')
        p = self.mutated("pod.yaml", lambda d: d["spec"]["volumes"][0].update(name="Shared"))
        self.assertProblem(p, 'spec.volumes[0].name "Shared": not a DNS-1123 label')

    def test_enums(self):
        p = self.mutated("pod.yaml", lambda d: d["spec"].update(restartPolicy="Sometimes"))
        self.assertProblem(p, 'spec.restartPolicy "Sometimes": must be one of', "'Never'")
        p = self.mutated("pod.yaml", lambda d: d["spec"]["volumes"][1]["emptyDir"].update(
            medium="memory"))
        self.assertProblem(p, 'spec.volumes[1].emptyDir.medium "memory": must be one of')
        p = self.container(lambda c: c.update(imagePullPolicy="IfMissing"))
        self.assertProblem(p, 'spec.containers[0].imagePullPolicy "IfMissing"')

    def test_volumes_and_mounts(self):
        p = self.mutated("pod.yaml", lambda d: d["spec"]["volumes"][1].update(
            hostPath={"path": "/dev/shm"}))
        self.assertProblem(p, "spec.volumes[1]: needs exactly one volume source",
                           "found emptyDir, hostPath")
        p = self.container(lambda c: c["volumeMounts"][1].update(mountPath="/shared"))
        self.assertProblem(p, 'spec.containers[0].volumeMounts[1].mountPath "/shared"',
                           "already mounted")
        p = self.container(lambda c: c["volumeMounts"][0].update(mountPath="shared"))
        self.assertProblem(p, "volumeMounts[0].mountPath", "must be an absolute path")

    def test_toleration(self):
        p = self.mutated("pod.yaml", lambda d: d["spec"]["tolerations"][0].update(value="true"))
        self.assertProblem(p, 'spec.tolerations[0].value "true"',
                           "must be empty with operator Exists")

    def test_ranks_match_gpus(self):
        p = self.container(lambda c: c["env"][0].update(value="4"))
        self.assertProblem(p, 'spec.containers[0].env[0].value "4": one rank per GPU: 8 GPUs')
        p = self.container(lambda c: c["env"][1].update(value="3"))
        self.assertProblem(p, 'spec.containers[0].env[1].value "3": LL_TP must divide LL_NPROC')

    def test_unknown_kind(self):
        p = self.mutated("pod.yaml", lambda d: d.update(apiVersion="v2"))
        self.assertProblem(p, 'apiVersion/kind "v2 Pod": not a kind this validator knows')


class PvcErrors(Case):
    def test_access_mode_and_size(self):
        p = self.mutated("pvc.yaml", lambda d: d["spec"].update(accessModes=["ReadWriteAll"]))
        self.assertProblem(p, 'spec.accessModes[0] "ReadWriteAll": must be one of')
        p = self.mutated("pvc.yaml", lambda d: d["spec"]["resources"]["requests"].update(
            storage="1.2TB"))
        self.assertProblem(p, 'spec.resources.requests.storage "1.2TB": not a quantity')
        p = self.mutated("pvc.yaml", lambda d: d["spec"]["resources"].update(
            requests={"size": "1Ti"}))
        self.assertProblem(p, "spec.resources.requests.size: only storage can be requested")
        self.assertProblem(p, "spec.resources.requests.storage: required field missing")


class MpiJobErrors(Case):
    def job(self, change, name="mpijob.yaml"):
        return self.mutated(name, change)

    @staticmethod
    def launcher(d):
        return d["spec"]["mpiReplicaSpecs"]["Launcher"]

    @staticmethod
    def worker(d):
        return d["spec"]["mpiReplicaSpecs"]["Worker"]

    def env(self, d, name):
        container = self.launcher(d)["template"]["spec"]["containers"][0]
        return next(e for e in container["env"] if e["name"] == name)

    def test_mount_of_undefined_volume(self):
        p = self.job(lambda d: self.worker(d)["template"]["spec"]["containers"][0][
            "volumeMounts"][1].update(name="dshm"))
        self.assertProblem(p, "mpijob.yaml: doc 0: spec.mpiReplicaSpecs.Worker.template.spec"
                           '.containers[0].volumeMounts[1].name "dshm": no such volume')

    def test_launcher_replicas(self):
        p = self.job(lambda d: self.launcher(d).update(replicas=2))
        self.assertProblem(p, "spec.mpiReplicaSpecs.Launcher.replicas 2: must be 1")
        p = self.job(lambda d: self.worker(d).update(replicas="4"))
        self.assertProblem(p, 'spec.mpiReplicaSpecs.Worker.replicas "4": expected an integer')

    def test_slots_per_worker(self):
        p = self.job(lambda d: d["spec"].update(slotsPerWorker="8"))
        self.assertProblem(p, 'spec.slotsPerWorker "8": expected an integer')
        p = self.job(lambda d: d["spec"].update(slotsPerWorker=0))
        self.assertProblem(p, "spec.slotsPerWorker 0: must be at least 1")

    def test_enums(self):
        p = self.job(lambda d: d["spec"].update(mpiImplementation="OpenMPIv5"))
        self.assertProblem(p, 'spec.mpiImplementation "OpenMPIv5": must be one of',
                           "'OpenMPI', 'Intel', 'MPICH'")
        p = self.job(lambda d: d["spec"]["runPolicy"].update(cleanPodPolicy="Sometimes"))
        self.assertProblem(p, 'spec.runPolicy.cleanPodPolicy "Sometimes": must be one of',
                           "'None', 'Running', 'All'")
        p = self.job(lambda d: d["spec"].update(launcherCreationPolicy="WaitForWorkers"))
        self.assertProblem(p, 'spec.launcherCreationPolicy "WaitForWorkers"')
        p = self.job(lambda d: self.worker(d).update(restartPolicy="Sometimes"))
        self.assertProblem(p, 'spec.mpiReplicaSpecs.Worker.restartPolicy "Sometimes"')

    def test_replica_types(self):
        p = self.job(lambda d: d["spec"]["mpiReplicaSpecs"].update(
            Master=d["spec"]["mpiReplicaSpecs"].pop("Launcher")))
        self.assertProblem(p, "spec.mpiReplicaSpecs.Master: must be Launcher or Worker")
        self.assertProblem(p, "spec.mpiReplicaSpecs.Launcher: required")

    def test_template_restart_policy(self):
        p = self.job(lambda d: self.worker(d)["template"]["spec"].update(restartPolicy="Never"))
        self.assertProblem(p, "spec.mpiReplicaSpecs.Worker.template.spec.restartPolicy",
                           "set spec.mpiReplicaSpecs.Worker.restartPolicy instead")

    def test_unknown_run_policy_field(self):
        p = self.job(lambda d: d["spec"]["runPolicy"].update(backOffLimit=3))
        self.assertProblem(p, "spec.runPolicy.backOffLimit: unknown field", "backoffLimit?")

    def test_api_version(self):
        p = self.job(lambda d: d.update(apiVersion="kubeflow.org/v1"))
        self.assertProblem(p, 'apiVersion/kind "kubeflow.org/v1 MPIJob"')

    def test_ranks_match_the_job(self):
        p = self.job(lambda d: self.env(d, "LL_NPROC").update(value="16"))
        self.assertProblem(p, "spec.mpiReplicaSpecs.Launcher.template.spec.containers[0].env[0]"
                           '.value "16": the job has 32 slots')

        def wide_tp(d):
            self.env(d, "LL_TP").update(value="16")
        self.assertProblem(self.job(wide_tp), 'env[1].value "16": a tensor-parallel group '
                           "must fit in one worker")
        p = self.job(lambda d: self.worker(d)["template"]["spec"]["containers"][0]["resources"]
                     ["limits"].update({"nvidia.com/gpu": 4}))
        self.assertProblem(p, 'Worker.template.spec.containers[0].resources.limits'
                           '["nvidia.com/gpu"] 4: one rank per GPU: slotsPerWorker is 8')
        p = self.job(lambda d: self.env(d, "LL_NPROC").update(value="6"), "mpijob-cpu.yaml")
        self.assertProblem(p, '.value "6": the job has 8 slots')

    def test_command_names_a_file_of_the_image(self):
        p = self.job(lambda d: self.launcher(d)["template"]["spec"]["containers"][0].update(
            command=["/opt/llama-lora/scripts/1-trian.sh"]))
        self.assertProblem(p, 'Launcher.template.spec.containers[0].command[0] '
                           '"/opt/llama-lora/scripts/1-trian.sh": not in the image: '
                           "deploy/scripts/1-trian.sh does not exist")

    def test_probe_port_name(self):
        p = self.job(lambda d: self.worker(d)["template"]["spec"]["containers"][0][
            "readinessProbe"]["tcpSocket"].update(port="sshd"))
        self.assertProblem(p, 'readinessProbe.tcpSocket.port "sshd": names no port')

    def test_names(self):
        p = self.job(lambda d: d["metadata"].update(name="l" * 58))
        self.assertProblem(p, "metadata.name", "derived pod name", "-launcher")
        p = self.job(lambda d: d["spec"].update(sshAuthMountPath="home/llama/.ssh"))
        self.assertProblem(p, 'spec.sshAuthMountPath "home/llama/.ssh": must be an absolute path')


class YamlErrors(Case):
    def test_duplicate_key(self):
        text = (K8S / "pvc.yaml").read_text(encoding="utf-8") + "kind: Pod\n"
        self.assertProblem(self.problems_of("pvc.yaml", text), "invalid YAML",
                           "duplicate key 'kind'")

    def test_syntax_error(self):
        self.assertProblem(self.problems_of("bad.yaml", "spec: [\n"), "bad.yaml: invalid YAML")

    def test_not_an_object(self):
        self.assertProblem(self.problems_of("list.yaml", "- a\n- b\n"),
                           "list.yaml: doc 0: expected a mapping")
        self.assertProblem(self.problems_of("empty.yaml", "# nothing\n"), "no Kubernetes object")

    def test_documents_are_numbered(self):
        text = (K8S / "pvc.yaml").read_text(encoding="utf-8") + "---\n" + \
            (K8S / "pod.yaml").read_text(encoding="utf-8").replace("memory: 1000Gi", "memory: 1T B")
        self.assertProblem(self.problems_of("both.yaml", text),
                           "both.yaml: doc 1: spec.containers[0].resources.requests.memory")


class DockerfileErrors(Case):
    def problems(self, change, name="Dockerfile.cpu", ignore=None):
        text = change((DEPLOY / name).read_text(encoding="utf-8"))
        if ignore is not None:
            (self.dir / f"{name}.dockerignore").write_text(ignore, encoding="utf-8")
        return self.problems_of(name, text)

    def test_real_dockerignore_keeps_what_is_copied(self):
        for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
            ignore = (DEPLOY / f"{name}.dockerignore").read_text(encoding="utf-8")
            self.assertEqual(self.problems(lambda t: t, name, ignore), [], name)

    def test_single_stage(self):
        def runtime_only(text):
            return text[text.index("FROM debian:${DEBIAN_RELEASE}-slim"):]
        p = self.problems(runtime_only)
        self.assertProblem(p, "Dockerfile.cpu: needs a multi-stage build", "found 1 FROM")
        self.assertProblem(p, "no build stage runs scripts/setup")

    def test_user(self):
        self.assertProblem(self.problems(lambda t: t.replace("USER llama", "USER root")),
                           "USER root: the final stage must run as a non-root user")
        self.assertProblem(self.problems(lambda t: t.replace("USER llama", "USER 0:0")),
                           "USER 0:0")
        self.assertProblem(self.problems(lambda t: t.replace("USER llama\n", "")),
                           "the final stage has no USER")

    def test_build_stage_runs_setup(self):
        p = self.problems(lambda t: t.replace("RUN scripts/setup\n",
                                              "RUN cmake --preset release\n"))
        self.assertProblem(p, "no build stage runs scripts/setup")
        p = self.problems(lambda t: t.replace("USER llama", "RUN scripts/setup\nUSER llama"))
        self.assertProblem(p, "the final stage runs scripts/setup")

    def test_copies_from_build_stage(self):
        p = self.problems(lambda t: t.replace("--from=build", "--from=builder"))
        self.assertProblem(p, "COPY --from=builder: no such stage")
        self.assertProblem(p, "the final stage copies nothing from the build stage")

    def test_copy_sources(self):
        p = self.problems(lambda t: t.replace("deploy/ssh/sshd_config ", "deploy/ssh/sshd_confg "))
        self.assertProblem(p, "Dockerfile.cpu: line ", "COPY deploy/ssh/sshd_confg: no such file")
        p = self.problems(lambda t: t, ignore="*\n!scripts\n!src\n!deploy/ssh\n")
        self.assertProblem(p, "COPY deploy/scripts/: excluded from the build context")

    def test_entrypoint(self):
        p = self.problems(lambda t: t.replace('ENTRYPOINT ["llama-lora"]\nCMD ["--help"]\n', ""))
        self.assertProblem(p, "the final stage has no ENTRYPOINT or CMD")


class Scripts(unittest.TestCase):
    SCRIPTS = sorted((DEPLOY / "scripts").glob("*.sh"))

    def test_bash_parses_them(self):
        self.assertGreaterEqual(len(self.SCRIPTS), 4)
        for script in self.SCRIPTS:
            run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, f"{script.name}: {run.stderr}")

    def test_step_scripts_are_executable(self):
        for script in self.SCRIPTS:
            if script.name[0].isdigit():
                self.assertTrue(script.stat().st_mode & 0o111, f"{script.name} is not executable")

    @unittest.skipIf(shutil.which("shellcheck") is None, "shellcheck not installed")
    def test_shellcheck(self):
        run = subprocess.run(["shellcheck", "-x", *map(str, self.SCRIPTS)],
                             cwd=DEPLOY / "scripts", capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    # The plain summary line CI counts.
    print(f"test_validate: {result.testsRun - failed - skipped} passed, {failed} failed, "
          f"{skipped} skipped")
    sys.exit(1 if failed or not result.wasSuccessful() else 0)
