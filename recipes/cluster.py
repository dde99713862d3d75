"""A cluster profile: the Slurm facts a cluster user would otherwise repeat on every command.

    # ~/.config/kollm/cluster.yaml   (or --profile FILE, or $KOLLM_PROFILE)
    account: myacct                  # required
    partition: gpu                   # required
    gpus_per_node: 8
    time_limit: "04:00:00"
    images:                          # one per environment (containers/)
      train: registry.example.com/kollm-train:25.11
      serve: registry.example.com/kollm-serve:25.11
      nemo_rl: nvcr.io/nvidia/nemo-rl:v0.7.0
      trtllm: nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3
    mounts: [/lustre/datasets:/lustre/datasets]
    tunnel: {kind: ssh, host: login.cluster, user: me, job_dir: /lustre/me/nemo_run}   # or {kind: local}

The profile becomes dotted overrides applied after the preset and before the command line's own
(`run.account=...` on a command still wins). It only names cluster fields, so a local run that
finds one is unchanged. Every mistake is one line naming the file and the key.
"""

from __future__ import annotations

import difflib
import json
import os

from kollm.core.errors import KollmError

# profile key -> the override it sets
SCALARS = {
    "account": "run.account",
    "partition": "run.partition",
    "gpus_per_node": "run.gpus_per_node",
    "time_limit": "run.time_limit",
}
IMAGES = {
    "train": "run.container_image",
    "serve": "run.serve_image",
    "nemo_rl": "run.nemo_rl_image",
    "trtllm": "trtllm.container",
}
TUNNEL = {"host": "run.ssh_host", "user": "run.ssh_user", "job_dir": "run.remote_job_dir"}
REQUIRED = ("account", "partition")
KEYS = (*SCALARS, "images", "mounts", "tunnel")


def find(explicit: str = "") -> str:
    """The profile in use: `explicit` (must exist), else $KOLLM_PROFILE (must exist), else the default path
    when that file exists; "" for none."""
    for path, origin in ((explicit, "--profile"), (os.environ.get("KOLLM_PROFILE", ""), "$KOLLM_PROFILE")):
        if path:
            path = os.path.expanduser(path)
            if not os.path.isfile(path):
                raise KollmError(f"cluster profile {path} (from {origin}): no such file")
            return os.path.abspath(path)
    default = os.path.expanduser(
        os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.join("~", ".config")), "kollm", "cluster.yaml")
    )
    return default if os.path.isfile(default) else ""


def _unknown(path: str, key: str, allowed) -> KollmError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"keys: {', '.join(allowed)}"
    return KollmError(f"{path}: unknown key {key!r}; {hint}")


def _string(path: str, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KollmError(f"{path}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def load(path: str) -> dict:
    """The profile's mapping, parsed and checked."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise KollmError(f"cluster profile {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise KollmError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise KollmError(
            f"{path}: a cluster profile is a mapping of keys ({', '.join(KEYS)}), got {type(data).__name__}"
        )
    for key in data:
        if key not in KEYS:
            raise _unknown(path, str(key), KEYS)
    for key in REQUIRED:
        if key not in data:
            raise KollmError(f"{path}: missing required key {key!r}")
    return data


def overrides(path: str) -> list[str]:
    """The profile at `path` as dotted overrides (`run.account=...`), checked key by key."""
    data = load(path)
    out = [f"run.profile={path}"]
    for key, target in SCALARS.items():
        if key not in data:
            continue
        value = data[key]
        if key == "gpus_per_node":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise KollmError(f"{path}: gpus_per_node must be a whole number >= 0, got {value!r}")
            out.append(f"{target}={value}")
        else:
            out.append(f"{target}={_string(path, key, value)}")
    images = data.get("images", {})
    if not isinstance(images, dict):
        raise KollmError(f"{path}: images must map an environment ({', '.join(IMAGES)}) to an image, got {images!r}")
    for env, image in images.items():
        if env not in IMAGES:
            raise _unknown(path, f"images.{env}", [f"images.{k}" for k in IMAGES])
        out.append(f"{IMAGES[env]}={_string(path, f'images.{env}', image)}")
    mounts = data.get("mounts", [])
    if not isinstance(mounts, list):
        raise KollmError(f"{path}: mounts must be a list of SRC:DST paths, got {mounts!r}")
    for i, m in enumerate(mounts):
        m = _string(path, f"mounts[{i}]", m)
        src, _, dst = m.partition(":")
        if not (src.startswith("/") and dst.startswith("/")):
            raise KollmError(f"{path}: mounts[{i}] = {m!r} is not SRC:DST with absolute paths")
    if mounts:
        out.append("run.container_mounts=" + json.dumps(mounts))
    tunnel = data.get("tunnel", {"kind": "local"})
    if not isinstance(tunnel, dict):
        raise KollmError(f"{path}: tunnel must be a mapping (kind: ssh|local, host, user, job_dir), got {tunnel!r}")
    for key in tunnel:
        if key not in ("kind", *TUNNEL):
            raise _unknown(path, f"tunnel.{key}", [f"tunnel.{k}" for k in ("kind", *TUNNEL)])
    kind = tunnel.get("kind", "ssh" if "host" in tunnel else "local")
    if kind not in ("ssh", "local"):
        raise KollmError(f"{path}: tunnel.kind must be ssh or local, got {kind!r}")
    if kind == "ssh":
        if "host" not in tunnel:
            raise KollmError(f"{path}: tunnel.kind is ssh: missing required key 'tunnel.host'")
        for key, target in TUNNEL.items():
            if key in tunnel:
                out.append(f"{target}={_string(path, f'tunnel.{key}', tunnel[key])}")
    elif set(tunnel) - {"kind"}:
        raise KollmError(
            f"{path}: tunnel.kind is local: {', '.join(sorted(set(tunnel) - {'kind'}))} would be ignored; "
            "remove them or set kind: ssh"
        )
    return out
