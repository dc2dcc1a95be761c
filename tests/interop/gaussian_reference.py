"""Reference Gaussian conditioning from numpy.linalg, for tests/model_numpy.rs.

Prints one JSON document with two parts:
- "fixed": a fixed mean and covariance (5 coordinates), and for a few
  choices of given coordinates (with values) and targets, the conditional
  mean and covariance (solve, no Cholesky) and the log density of a point
  (slogdet and solve);
- "fitted": seeded windows of 3 channels; with one lag, the states
  (channels at t and t-1) are fitted by np.average and np.cov (weighted by
  a half-life of 50 windows, or not at all); the newest window, with
  channel 1 hidden, is predicted from the others, and the log-likelihood of
  what it observed given the lag is computed.

With `--read DIR` it instead reads the model saved in DIR by hand, as the
safetensors format defines it (a little-endian u64 header length, a JSON
header of dtype, shape and data offsets, then the data), and prints the
manifest and every tensor as numpy sees it.
"""

import json
import os
import struct
import sys

import numpy as np


def condition(mean, cov, given, values, targets):
    if not given:
        return mean[targets], cov[np.ix_(targets, targets)]
    s_gg = cov[np.ix_(given, given)]
    s_tg = cov[np.ix_(targets, given)]
    gain = np.linalg.solve(s_gg, s_tg.T).T
    m = mean[targets] + gain @ (np.asarray(values) - mean[given])
    c = cov[np.ix_(targets, targets)] - gain @ s_tg.T
    return m, c


def log_density(mean, cov, x):
    r = np.asarray(x) - mean
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (r @ np.linalg.solve(cov, r) + len(r) * np.log(2 * np.pi) + logdet))


def fixed():
    mean = np.array([1.0, -2.0, 0.5, 10.0, 3.0])
    root = np.array(
        [
            [2.0, 0.0, 0.0, 0.0, 0.0],
            [0.9, 1.1, 0.0, 0.0, 0.0],
            [-0.4, 0.3, 0.7, 0.0, 0.0],
            [1.5, -0.2, 0.6, 3.0, 0.0],
            [0.1, 0.8, -0.5, 0.4, 0.5],
        ]
    )
    cov = root @ root.T
    x = [1.7, -1.1, 0.2, 12.5, 2.1]
    cases = []
    for given, targets in [([1, 3], [0]), ([0, 2, 4], [1, 3]), ([], [2, 4]), ([0, 1, 2, 3], [4])]:
        values = [x[g] for g in given]
        m, c = condition(mean, cov, given, values, targets)
        cases.append(
            {"given": given, "values": values, "targets": targets, "mean": m.tolist(), "covariance": c.tolist()}
        )
    return {
        "mean": mean.tolist(),
        "covariance": cov.tolist(),
        "x": x,
        "log_density": log_density(mean, cov, x),
        "cases": cases,
    }


def fitted(half_life):
    rng = np.random.default_rng(18)
    n = 300
    z = rng.standard_normal((n + 1, 3))
    windows = np.empty((n + 1, 3))
    level = np.zeros(3)
    for t in range(n + 1):
        level = 0.8 * level + z[t]
        windows[t] = [50.0 + 3.0 * level[0], 20.0 + level[0] + 0.5 * level[1], -5.0 + 0.2 * level[2] - level[1]]
    windows = np.round(windows, 6)
    # States of the first n windows: channels at t, then at t-1 (the first window lacks its lag).
    states = np.hstack([windows[1:n], windows[0 : n - 1]])
    count = len(states)
    weights = 0.5 ** (np.arange(count - 1, -1, -1) / half_life) if half_life else np.ones(count)
    mean = np.average(states, axis=0, weights=weights)
    cov = np.cov(states.T, aweights=weights, ddof=1)
    # The newest window: channel 1 hidden; given channels 0 and 2 at t and all at t-1.
    newest, lag = windows[n], windows[n - 1]
    given = [0, 2, 3, 4, 5]
    values = [newest[0], newest[2], *lag]
    m, c = condition(mean, cov, given, values, [1])
    lm, lc = condition(mean, cov, [3, 4, 5], list(lag), [0, 2])
    return {
        "half_life": half_life,
        "windows": windows.tolist(),
        "mean": mean.tolist(),
        "covariance": cov.tolist(),
        "predicted_mean": m.tolist(),
        "predicted_covariance": c.tolist(),
        "log_likelihood": log_density(lm, lc, [newest[0], newest[2]]),
    }


def read(directory):
    with open(os.path.join(directory, "parameters.safetensors"), "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F64", info
        start, end = info["data_offsets"]
        values = np.frombuffer(body[start:end], dtype="<f8").reshape(info["shape"])
        # JSON has no NaN or infinity (an adaptive shrinkage, no forgetting): as text.
        listed = [v if np.isfinite(v) else str(v) for v in values.ravel().tolist()]
        tensors[name] = {"shape": info["shape"], "values": listed}
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    return {"manifest": manifest, "tensors": tensors}


if len(sys.argv) == 3 and sys.argv[1] == "--read":
    print(json.dumps(read(sys.argv[2])))
else:
    print(json.dumps({"fixed": fixed(), "fitted": [fitted(None), fitted(50.0)]}))
