"""docker-py (the Docker SDK for Python) against berthd.

Run with DOCKER_HOST=unix:///path/to/berthd.sock and busybox:latest loaded, e.g. from
crates/berthd/tests/docker_py.rs, or by hand:
    DOCKER_HOST=unix:///run/berth/berth.sock python3 -m unittest -v tests/docker-py/test_berthd.py
"""

import os
import time
import unittest

import docker
import docker.errors

IMAGE = "busybox:latest"


class BerthdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = docker.from_env(timeout=120)

    def tearDown(self):
        for c in self.client.containers.list(all=True, filters={"label": "dockerpy=1"}):
            c.remove(force=True)

    def run_d(self, *cmd, **kw):
        labels = kw.pop("labels", {})
        labels["dockerpy"] = "1"
        return self.client.containers.run(IMAGE, list(cmd), detach=True, labels=labels, **kw)

    def test_ping_and_version(self):
        self.assertTrue(self.client.ping())
        v = self.client.version()
        self.assertEqual(v["ApiVersion"], "1.50")
        self.assertTrue(v["Version"])
        self.assertEqual(self.client.api.api_version, "1.50")
        info = self.client.info()
        self.assertIn("Containers", info)

    def test_images_list(self):
        tags = [t for i in self.client.images.list() for t in i.tags]
        self.assertIn(IMAGE, tags)
        img = self.client.images.get("busybox")
        self.assertTrue(img.id.startswith("sha256:"))
        with self.assertRaises(docker.errors.ImageNotFound):
            self.client.images.get("no-such-image:latest")

    def test_run_foreground_returns_output(self):
        out = self.client.containers.run(IMAGE, ["sh", "-c", "echo hello; echo world"], remove=True)
        self.assertEqual(out, b"hello\nworld\n")

    def test_run_foreground_nonzero_raises(self):
        with self.assertRaises(docker.errors.ContainerError) as cm:
            self.client.containers.run(IMAGE, ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
        self.assertEqual(cm.exception.exit_status, 3)
        self.assertIn(b"oops", cm.exception.stderr)

    def test_detached_logs_exec_stop_remove(self):
        c = self.run_d("sh", "-c", "echo started; sleep 1000", name="pyd")
        deadline = time.time() + 60
        while b"started" not in c.logs() and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(c.logs(), b"started\n")
        c.reload()
        self.assertEqual(c.status, "running")
        self.assertEqual(c.name, "pyd")
        r = c.exec_run(["sh", "-c", "echo in exec; exit 4"])
        self.assertEqual(r.exit_code, 4)
        self.assertEqual(r.output, b"in exec\n")
        r = c.exec_run(["cat", "/etc/hostname"])
        self.assertEqual(r.output.strip().decode(), c.id[:12])
        r = c.exec_run(["env"], environment={"X": "y"}, workdir="/tmp")
        self.assertIn(b"X=y", r.output)
        c.stop(timeout=1)
        c.reload()
        self.assertEqual(c.status, "exited")
        self.assertEqual(c.wait()["StatusCode"], 137)
        c.remove()
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get("pyd")

    def test_list_filters(self):
        a = self.run_d("sleep", "1000", name="pya", labels={"role": "a"})
        b = self.run_d("true", name="pyb", labels={"role": "b"})
        b.wait()
        running = {c.name for c in self.client.containers.list(filters={"label": "dockerpy=1"})}
        self.assertEqual(running, {"pya"})
        everything = {c.name for c in self.client.containers.list(all=True, filters={"label": "dockerpy=1"})}
        self.assertEqual(everything, {"pya", "pyb"})
        exited = [c.name for c in self.client.containers.list(all=True, filters={"status": "exited", "label": "dockerpy=1"})]
        self.assertEqual(exited, ["pyb"])
        by_label = [c.id for c in self.client.containers.list(all=True, filters={"label": "role=a"})]
        self.assertEqual(by_label, [a.id])
        by_name = [c.id for c in self.client.containers.list(all=True, filters={"name": "pyb"})]
        self.assertEqual(by_name, [b.id])

    def test_logs_stream_follow(self):
        c = self.run_d("sh", "-c", "for i in 1 2 3; do echo line $i; done")
        lines = b"".join(c.logs(stream=True, follow=True))
        self.assertEqual(lines, b"line 1\nline 2\nline 3\n")

    def test_attach_stream(self):
        c = self.client.containers.create(
            IMAGE, ["sh", "-c", "echo one; echo two"], labels={"dockerpy": "1"}
        )
        stream = c.attach(stream=True, logs=True, stdout=True, stderr=True)
        c.start()
        self.assertEqual(b"".join(stream), b"one\ntwo\n")
        self.assertEqual(c.wait()["StatusCode"], 0)

    def test_errors(self):
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get("no-such-container")
        self.run_d("sleep", "1000", name="pyconflict")
        with self.assertRaises(docker.errors.APIError) as cm:
            self.run_d("true", name="pyconflict")
        self.assertEqual(cm.exception.status_code, 409)


if __name__ == "__main__":
    if "DOCKER_HOST" not in os.environ:
        raise SystemExit("set DOCKER_HOST to berthd's socket")
    unittest.main(verbosity=2)
