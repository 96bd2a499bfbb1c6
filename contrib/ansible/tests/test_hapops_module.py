# SPDX-License-Identifier: MIT
"""Unit checks of the module's parsing of hapops's JSON: the single report and the fleet report.

Run with: python3 -m unittest discover -s contrib/ansible/tests (needs ansible-core installed,
since the module imports ansible.module_utils). The single-target path is also run for real by
test/e2e/ansible.test.ts; the fleet shape is checked here on reports written out by hand in the
shape hapops documents (a fleet run wraps one single report per target).
"""

import copy
import importlib.util
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location(
    "hapops_module", os.path.join(HERE, "..", "library", "hapops.py")
)
hapops = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(hapops)


def server_plan(op, backend, server, before, after, commands):
    return {
        "version": 1,
        "op": op,
        "target": "/run/haproxy/admin.sock",
        "level": "admin",
        "mutates": True,
        "scope": {"servers": ["%s/%s" % (backend, server)]},
        "steps": [{"kind": "send", "op": op, "commands": commands}] if commands else [],
        "guards": [],
        "selector": "%s/%s" % (backend, server),
        "servers": [
            {
                "backend": backend,
                "server": server,
                "before": dict(before, operational="UP", sessions=0),
                "after": after,
                "commands": commands,
            }
        ],
    }


def single(op, before, after, commands, outcome="ok", dry_run=False, error=None):
    plan = server_plan(op, "be_app", "app1", before, after, commands)
    report = {
        "op": op,
        "target": "/run/haproxy/admin.sock",
        "dryRun": dry_run,
        "outcome": outcome,
        "plan": plan,
        "sent": list(commands),
        "verified": bool(commands) and not dry_run,
        "steps": [{"op": op, "selector": "be_app/app1", "plan": plan, "sent": list(commands)}],
        "selector": "be_app/app1",
    }
    if error:
        report.update(plan=None, steps=[], sent=[], error=error)
    return report


READY = {"admin": "READY", "weight": 100}
DRAIN = {"admin": "DRAIN", "weight": 100}
MAINT = {"admin": "MAINT", "weight": 100}
DRAIN_LINE = "set server be_app/app1 state drain"

CHANGED = single("drain", READY, DRAIN, [DRAIN_LINE])
NOOP = single("drain", DRAIN, DRAIN, [], outcome="noop")
REFUSED = single(
    "drain",
    READY,
    DRAIN,
    [],
    outcome="refused",
    error={"code": "GUARD", "exitCode": 3, "message": "refusing drain be_app/app1: be_app would have no server"},
)


def fleet(*targets, **top):
    report = {
        "run": "6f1c0a52-7c59-4c1e-9d55-0e4f1d2b9a10",
        "op": "drain",
        "dryRun": False,
        "mode": "rolling",
        "outcome": "ok",
        "exitCode": 0,
        "targets": [
            {
                "target": name,
                "result": r["outcome"] if r else "not-reached",
                "reason": reason,
                "exitCode": (r.get("error") or {}).get("exitCode", 0) if r else 0,
                "report": r,
            }
            for name, r, reason in targets
        ],
    }
    report.update(top)
    return report


class BuildArgv(unittest.TestCase):
    def params(self, **kw):
        base = dict(
            op="drain", selector=None, addr=None, weight=None, wait=False, wait_timeout=None,
            then=None, reason=None, force=False, target=None, group=None, socket=None,
            config=None, args=[], hapops="hapops",
        )
        base.update(kw)
        return base

    def test_drain_with_everything(self):
        argv = hapops.build_argv(
            ["/usr/local/sbin/hapops"],
            self.params(
                selector="be_app/app1", wait=True, wait_timeout="5m", then="maint",
                reason="kernel", force=True, socket="/run/haproxy/admin.sock", config="/etc/h.yaml",
            ),
            check_mode=True,
        )
        self.assertEqual(argv, [
            "/usr/local/sbin/hapops", "--json", "-s", "/run/haproxy/admin.sock", "-c", "/etc/h.yaml",
            "drain", "be_app/app1", "--wait", "--wait-timeout", "5m", "--then", "maint",
            "--reason", "kernel", "--force", "--dry-run",
        ])

    def test_weight_by_address_on_a_fleet(self):
        argv = hapops.build_argv(
            ["sudo", "/usr/local/sbin/hapops"],
            self.params(op="weight", addr="10.0.0.5", weight=50, target=["lb1", "lb2"], group=None),
            check_mode=False,
        )
        self.assertEqual(argv, [
            "sudo", "/usr/local/sbin/hapops", "--json", "-t", "lb1,lb2",
            "weight", "--addr", "10.0.0.5", "50",
        ])

    def test_other_commands_take_their_words_from_args(self):
        argv = hapops.build_argv(
            ["hapops"],
            self.params(op="map replace", group=["edge", "core"], args=["/etc/haproxy/hosts.map", "--from", "/tmp/n.map"]),
            check_mode=False,
        )
        self.assertEqual(argv, [
            "hapops", "--json", "-g", "edge,core", "map", "replace", "/etc/haproxy/hosts.map", "--from", "/tmp/n.map",
        ])


class SingleReport(unittest.TestCase):
    def test_lines_sent_is_changed(self):
        self.assertTrue(hapops.changed_of(CHANGED))
        self.assertEqual(hapops.sent_of(CHANGED), [DRAIN_LINE])

    def test_a_dry_run_that_would_send_is_changed(self):
        self.assertTrue(hapops.changed_of(single("drain", READY, DRAIN, [DRAIN_LINE], dry_run=True)))

    def test_already_so_is_not_changed(self):
        self.assertFalse(hapops.changed_of(NOOP))
        # hapops's dry run of a no-op says outcome "ok" with nothing to send: still not changed.
        self.assertFalse(hapops.changed_of(dict(NOOP, outcome="ok", dryRun=True)))

    def test_a_raw_read_is_not_changed(self):
        raw = {"op": "raw", "outcome": "ok", "sent": ["show info"], "mutates": False,
               "plan": {"mutates": False, "steps": []}, "steps": []}
        self.assertFalse(hapops.changed_of(raw))

    def test_a_file_written_is_changed(self):
        save = {"op": "state save", "outcome": "ok", "sent": [], "steps": [],
                "plan": {"mutates": True, "steps": [{"kind": "write-file", "op": "state save", "path": "/x"}]}}
        self.assertTrue(hapops.changed_of(save))

    def test_diff_from_the_first_before_to_the_last_after(self):
        report = copy.deepcopy(CHANGED)
        maint = server_plan("maint", "be_app", "app1", DRAIN, MAINT, ["set server be_app/app1 state maint"])
        report["steps"].append({"op": "maint", "plan": maint, "sent": maint["steps"][0]["commands"]})
        self.assertEqual(hapops.diff_of(report), {
            "before": "be_app/app1: READY weight 100\n",
            "after": "be_app/app1: MAINT weight 100\n",
        })

    def test_error_message_is_hapops_own(self):
        self.assertEqual(hapops.error_message(REFUSED, 3, "", ""), REFUSED["error"]["message"])
        self.assertEqual(hapops.error_message(None, 4, "", "no socket at /x\n"), "no socket at /x")
        self.assertEqual(hapops.error_message(None, 1, "", ""), "hapops exited with 1")


class FleetReport(unittest.TestCase):
    def test_changed_when_any_target_sent(self):
        report = fleet(("lb1", NOOP, None), ("lb2", CHANGED, None))
        self.assertTrue(hapops.changed_of(report))
        self.assertEqual(hapops.sent_of(report), {"lb1": [], "lb2": [DRAIN_LINE]})

    def test_not_changed_when_no_target_sent(self):
        report = fleet(("lb1", NOOP, None), ("lb2", NOOP, None))
        self.assertFalse(hapops.changed_of(report))

    def test_diff_names_each_target(self):
        report = fleet(("lb1", NOOP, None), ("lb2", CHANGED, None), ("lb3", None, "stopped after lb2"))
        self.assertEqual(hapops.diff_of(report), {
            "before": "[lb1] be_app/app1: DRAIN weight 100\n[lb2] be_app/app1: READY weight 100\n",
            "after": "[lb1] be_app/app1: DRAIN weight 100\n[lb2] be_app/app1: DRAIN weight 100\n",
        })

    def test_failure_names_each_failed_target(self):
        report = fleet(
            ("lb1", CHANGED, None),
            ("lb2", REFUSED, None),
            ("lb3", None, "not reached: lb2 failed"),
            outcome="failed",
            exitCode=3,
        )
        self.assertEqual(
            hapops.error_message(report, 3, "", ""),
            "lb2: %s; lb3: not reached: lb2 failed" % REFUSED["error"]["message"],
        )

    def test_a_top_level_error_wins(self):
        report = fleet(outcome="refused", exitCode=2, error={"code": "USAGE", "exitCode": 2, "message": "no group edge"})
        self.assertEqual(hapops.error_message(report, 2, "", ""), "no group edge")


if __name__ == "__main__":
    unittest.main()
