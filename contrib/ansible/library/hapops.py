#!/usr/bin/python3
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module hapops: a thin wrapper around `hapops --json` on the managed host.

Everything that matters (selection, planning, guards, verification, audit) is hapops's own; this
module only builds the command line, runs it, and maps the one JSON report it prints to Ansible's
changed / failed / diff.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: hapops
short_description: Drain, maintain, ready or reweight HAProxy servers with hapops
description:
  - Runs C(hapops --json) on the managed host and reports what it did. hapops plans each change
    from HAProxy's live state, guards it, sends it over the runtime API, verifies it by reading
    HAProxy's state back, and writes it to its audit log; this module adds nothing to that.
  - C(changed) is true when hapops sent (or, in check mode, would send) at least one line, or
    wrote a file (C(state save), C(--persist)). A server already in the wanted state gets no
    command ("already; nothing sent"), so running the same task again reports C(ok).
  - Check mode runs C(hapops --dry-run), which plans, guards and sends nothing that changes
    state. A guard refusal fails in check mode too, as it would for real.
  - Diff mode returns each planned server's state before and after
    (C(be_app/app1 READY weight 100) -> C(be_app/app1 DRAIN weight 100)).
  - Any exit code other than 0 fails the task with hapops's own message, its exit code in C(rc)
    and the full report in C(report) (1 HAProxy refused or verification failed, 2 invalid input,
    3 guard or policy refusal, 4 socket, 5 audit log, 6 wait timed out).
version_added: "0.1.0"
author: hapops
requirements:
  - hapops on the managed host (C(hapops) on PATH, or the I(hapops) option)
options:
  op:
    description:
      - The hapops command to run. C(drain), C(maint), C(ready) and C(weight) take the options
        below; the other change commands (C(disable) and C(enable) are aliases of C(maint) and
        C(ready)) take their words in I(args).
    type: str
    required: true
    choices:
      - drain
      - maint
      - disable
      - ready
      - enable
      - weight
      - raw
      - table set
      - table clear
      - map add
      - map set
      - map del
      - map replace
      - acl add
      - acl del
      - acl replace
      - rotate-cert
      - state save
      - reload
  selector:
    description:
      - Which servers, C(backend/server), C(backend/*), C(*/server) or C(*/*). A selector that
        matches nothing fails (hapops exit 2) and names the closest existing names.
    type: str
  addr:
    description:
      - Instead of I(selector), every server with this address in every backend (C(ip[:port])).
    type: str
  weight:
    description:
      - For C(op=weight), C(0)-C(256) or C(N%) of the configured weight.
    type: raw
  wait:
    description:
      - For C(op=drain), wait until the servers have no sessions left.
    type: bool
    default: false
  wait_timeout:
    description:
      - For C(op=drain) with I(wait), give up after this long (a duration with a unit, C(5m)).
        hapops's default is C(10m); a timeout fails the task (exit 6) and leaves the servers
        DRAIN.
    type: str
  then:
    description:
      - For C(op=drain) with I(wait), the state to put the servers in once drained.
    type: str
    choices: [maint]
  reason:
    description:
      - Why, recorded in hapops's audit log.
    type: str
  force:
    description:
      - Override a safety guard (recorded in the audit log), for example taking the last serving
        server of a backend out.
    type: bool
    default: false
  target:
    description:
      - Target names from hapops's config (C(-t)); several make a fleet run, reported per target.
    type: list
    elements: str
  group:
    description:
      - Groups of targets from hapops's config (C(-g)); a fleet run over all their targets.
    type: list
    elements: str
  socket:
    description:
      - The runtime API (C(-s)), C(/path), C(tls://host:port) or a target name from hapops's config.
    type: str
  config:
    description:
      - hapops's config file (C(-c)). Under sudo hapops only reads C(/etc/hapops/hapops.yaml) and
        refuses this option.
    type: path
  args:
    description:
      - More words for the command line, after the ones above. The positional words of the
        commands other than drain, maint, ready and weight (C(map replace) takes
        C([/etc/haproxy/hosts.map, --from, /tmp/new.map, --persist])), and flags this module
        has no option for (C(--ramp-to), C(--timeout), C(--all), C(-y)).
    type: list
    elements: str
    default: []
  hapops:
    description:
      - The hapops program on the managed host, looked up on PATH (and the sbin directories)
        unless it is a path. It may carry a prefix, C(sudo -n hapops), to act through the sudoers
        rule of C(hapops setup) without C(become). With C(become), hapops takes the operator
        from the SSH login's login uid, and refuses (exit 3) where there is none.
    type: str
    default: hapops
notes:
  - Check mode and diff mode are supported.
  - The task runs as long as hapops does; for a long C(drain --wait) consider C(async).
"""

EXAMPLES = r"""
- name: Take app1 out of rotation and wait until it is empty, then put it in maintenance
  hapops:
    op: drain
    selector: be_app/app1
    wait: true
    wait_timeout: 5m
    then: maint
    reason: "kernel update {{ ansible_date_time.date }}"

- name: Put it back
  hapops:
    op: ready
    selector: be_app/app1

- name: Half the weight of every server on 10.0.0.5, in every backend
  hapops:
    op: weight
    addr: 10.0.0.5
    weight: 50%

- name: Canary ramp (a flag this module has no option for goes in args)
  hapops:
    op: weight
    selector: be_app/app1
    weight: 10
    args: [--ramp-to, "100", --step, "10", --every, 30s]

- name: Replace a map from a file and write it to disk
  hapops:
    op: map replace
    args: [/etc/haproxy/hosts.map, --from, /etc/haproxy/hosts.map.new, --persist]

- name: As an operator through the sudoers rule (no become)
  hapops:
    hapops: sudo -n hapops
    socket: lb1
    op: drain
    selector: be_app/app1
"""

RETURN = r"""
rc:
  description: hapops's exit code.
  returned: always
  type: int
cmd:
  description: The command line that ran.
  returned: always
  type: list
  elements: str
outcome:
  description:
    - The report's outcome, C(ok), C(noop), C(failed) or C(refused) (in a fleet run, the overall
      one).
  returned: when hapops printed a report
  type: str
sent:
  description:
    - The runtime lines sent, in order (in check mode, the lines a real run would send).
    - In a fleet run (I(target) or I(group)), a mapping of target name to its lines.
  returned: when hapops printed a report
  type: raw
report:
  description: hapops's JSON report as it printed it (see its README, "JSON output").
  returned: when hapops printed a report
  type: dict
stderr:
  description: What hapops wrote on stderr (notes and warnings).
  returned: always
  type: str
diff:
  description: Each planned server's admin state and weight before and after, one line each.
  returned: in diff mode, when the report names servers
  type: dict
"""

import json
import os
import shlex

from ansible.module_utils.basic import AnsibleModule

OPS = [
    "drain", "maint", "disable", "ready", "enable", "weight",
    "raw", "table set", "table clear", "map add", "map set", "map del", "map replace",
    "acl add", "acl del", "acl replace", "rotate-cert", "state save", "reload",
]


def build_argv(program, params, check_mode):
    """The hapops command line for these module parameters."""
    argv = list(program) + ["--json"]
    if params.get("socket"):
        argv += ["-s", params["socket"]]
    if params.get("config"):
        argv += ["-c", params["config"]]
    if params.get("target"):
        argv += ["-t", ",".join(params["target"])]
    if params.get("group"):
        argv += ["-g", ",".join(params["group"])]
    argv += params["op"].split()
    if params.get("selector") is not None:
        argv.append(params["selector"])
    if params.get("addr") is not None:
        argv += ["--addr", params["addr"]]
    if params.get("weight") is not None:
        argv.append(str(params["weight"]))
    if params.get("wait"):
        argv.append("--wait")
    if params.get("wait_timeout") is not None:
        argv += ["--wait-timeout", params["wait_timeout"]]
    if params.get("then") is not None:
        argv += ["--then", params["then"]]
    if params.get("reason") is not None:
        argv += ["--reason", params["reason"]]
    if params.get("force"):
        argv.append("--force")
    if check_mode:
        argv.append("--dry-run")
    argv += [str(a) for a in params.get("args") or []]
    return argv


def is_fleet(report):
    return isinstance(report, dict) and isinstance(report.get("targets"), list)


def target_reports(report):
    """(target name or None, single report) for each report inside, fleet or not."""
    if is_fleet(report):
        return [
            (t.get("target"), t.get("report"))
            for t in report["targets"]
            if isinstance(t, dict) and isinstance(t.get("report"), dict)
        ]
    return [(None, report)] if isinstance(report, dict) else []


def _step_plans(report):
    """The plan of each step run (a ramp step, the maint after a drain), else the report's plan."""
    steps = [s.get("plan") for s in report.get("steps") or [] if isinstance(s, dict)]
    plans = [p for p in steps if isinstance(p, dict)]
    return plans or [p for p in [report.get("plan")] if isinstance(p, dict)]


def single_changed(report):
    """A single target's report: lines sent (or that would be), or a file written."""
    if report.get("mutates") is False or (report.get("plan") or {}).get("mutates") is False:
        return False  # raw of a read command
    if report.get("sent"):
        return True
    return any(
        isinstance(step, dict) and step.get("kind") == "write-file"
        for plan in [report.get("plan")] + _step_plans(report)
        if isinstance(plan, dict)
        for step in plan.get("steps") or []
    )


def changed_of(report):
    return any(single_changed(r) for _, r in target_reports(report))


def sent_of(report):
    if is_fleet(report):
        return dict((name, list(r.get("sent") or [])) for name, r in target_reports(report))
    return list(report.get("sent") or []) if isinstance(report, dict) else []


def _state(s):
    if not isinstance(s, dict):
        return "-"
    return "%s weight %s" % (s.get("admin", "?"), s.get("weight", "?"))


def diff_of(report):
    """before/after text, one line per planned server: the first step's before, the last's after."""
    before, after = [], []
    for name, r in target_reports(report):
        servers = {}
        for plan in _step_plans(r):
            for s in plan.get("servers") or []:
                if not isinstance(s, dict):
                    continue
                key = "%s/%s" % (s.get("backend"), s.get("server"))
                if key not in servers:
                    servers[key] = [s.get("before"), s.get("after")]
                else:
                    servers[key][1] = s.get("after")
        prefix = "[%s] " % name if name is not None else ""
        for key, (b, a) in servers.items():
            before.append("%s%s: %s\n" % (prefix, key, _state(b)))
            after.append("%s%s: %s\n" % (prefix, key, _state(a)))
    if not before:
        return None
    return {"before": "".join(before), "after": "".join(after)}


def error_message(report, rc, stdout, stderr):
    """hapops's own words for a failure."""
    if isinstance(report, dict):
        err = report.get("error")
        if isinstance(err, dict) and err.get("message"):
            return err["message"]
        if is_fleet(report):
            lines = []
            for t in report["targets"]:
                if not isinstance(t, dict) or t.get("result") in ("ok", "noop"):
                    continue
                inner = t.get("report") if isinstance(t.get("report"), dict) else {}
                why = (
                    t.get("reason")
                    or (inner.get("error") or {}).get("message")
                    or t.get("result")
                )
                lines.append("%s: %s" % (t.get("target"), why))
            if lines:
                return "; ".join(lines)
    text = (stderr or "").strip() or (stdout or "").strip()
    return text or "hapops exited with %d" % rc


def resolve_program(module, spec):
    words = shlex.split(spec)
    if not words:
        module.fail_json(msg="the hapops option is empty")
    first = words[0]
    if "/" in first:
        if not (os.path.isfile(first) and os.access(first, os.X_OK)):
            module.fail_json(msg="hapops program %s is not an executable file" % first)
        return words
    found = module.get_bin_path(first, opt_dirs=["/usr/local/sbin", "/usr/local/bin"])
    if not found:
        module.fail_json(
            msg="%s not found on PATH on the managed host: install hapops (hapops setup), "
            "or give its path in the hapops option" % first
        )
    return [found] + words[1:]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            op=dict(type="str", required=True, choices=OPS),
            selector=dict(type="str"),
            addr=dict(type="str"),
            weight=dict(type="raw"),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="str"),
            then=dict(type="str", choices=["maint"]),
            reason=dict(type="str"),
            force=dict(type="bool", default=False),
            target=dict(type="list", elements="str"),
            group=dict(type="list", elements="str"),
            socket=dict(type="str"),
            config=dict(type="path"),
            args=dict(type="list", elements="str", default=[]),
            hapops=dict(type="str", default="hapops"),
        ),
        mutually_exclusive=[("selector", "addr")],
        supports_check_mode=True,
    )
    program = resolve_program(module, module.params["hapops"])
    argv = build_argv(program, module.params, module.check_mode)
    rc, stdout, stderr = module.run_command(
        argv, check_rc=False, environ_update={"NO_COLOR": "1"}
    )
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    result = dict(cmd=argv, rc=rc, stderr=stderr, changed=False)
    if isinstance(report, dict):
        # A failure can come after lines were sent (a drain whose wait timed out): they stand.
        result.update(
            report=report,
            outcome=report.get("outcome"),
            sent=sent_of(report),
            changed=changed_of(report) and not module.check_mode,
        )
    if rc != 0 or not isinstance(report, dict):
        if report is None and rc == 0:
            module.fail_json(msg="hapops printed no JSON report", stdout=stdout, **result)
        module.fail_json(msg=error_message(report, rc, stdout, stderr), **result)
    result["changed"] = changed_of(report)
    if module._diff:
        diff = diff_of(report)
        if diff is not None:
            result["diff"] = diff
    module.exit_json(**result)

if __name__ == "__main__":
    main()
