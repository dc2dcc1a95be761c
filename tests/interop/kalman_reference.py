"""Reference Kalman filter runs from FilterPy, for tests/kalman_filterpy.rs.

Builds FilterPy KalmanFilter objects for a random walk and for constant
velocity (process noise from FilterPy's own Q_continuous_white_noise), runs
each on a seeded sequence of steps (a time step that varies, a measurement of
varying variance, and sometimes none: predict only) and prints one JSON
document: per sequence its model, q, start and, per step, dt, z (null when the
step has no measurement), r, the F and Q FilterPy used, and x and P after it.
"""

import json
import sys

import numpy as np
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

STEPS = 400


def run(name, model, q, value, variance, rate_variance, r_scale, seed):
    rng = np.random.default_rng(seed)
    dim = 1 if model == "random_walk" else 2
    kf = KalmanFilter(dim_x=dim, dim_z=1)
    kf.x = np.zeros((dim, 1))
    kf.x[0, 0] = value
    kf.P = np.diag([variance, rate_variance][:dim])
    kf.H = np.zeros((1, dim))
    kf.H[0, 0] = 1.0

    truth, truth_rate = value, 0.0
    steps = []
    for _ in range(STEPS):
        dt = float(rng.choice([0.1, 0.5, 1.0, 1.0, 1.0, 2.5]))
        if dim == 1:
            kf.F = np.eye(1)
            kf.Q = np.array([[q * dt]])
            truth += np.sqrt(q * dt) * rng.standard_normal()
        else:
            kf.F = np.array([[1.0, dt], [0.0, 1.0]])
            kf.Q = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=q)
            truth += truth_rate * dt
            truth_rate += np.sqrt(q * dt) * rng.standard_normal()
        kf.predict()

        step = {"dt": dt, "F": kf.F.tolist(), "Q": kf.Q.tolist()}
        if rng.random() < 0.2:
            # No reading this step: the prior is the posterior.
            step["z"] = None
            step["r"] = None
        else:
            # Variances over three orders of magnitude, and now and then a
            # reading far off (the filter must absorb it all the same).
            r = float(r_scale * 10.0 ** rng.uniform(-1.5, 1.5))
            z = float(truth + np.sqrt(r) * rng.standard_normal())
            if rng.random() < 0.03:
                z += float(rng.choice([-1.0, 1.0]) * 20.0 * np.sqrt(r))
            kf.update(z, R=r)
            step["z"] = z
            step["r"] = r
        step["x"] = kf.x[:, 0].tolist()
        step["P"] = kf.P.tolist()
        steps.append(step)

    return {
        "name": name,
        "model": model,
        "q": q,
        "value": value,
        "variance": variance,
        "rate_variance": rate_variance,
        "steps": steps,
    }


def main():
    sequences = [
        run("random walk", "random_walk", 0.3, 20.0, 4.0, 0.0, 0.5, seed=1),
        run("constant velocity", "constant_velocity", 0.05, -3.0, 1.0, 0.25, 0.2, seed=2),
        # A well-observed quantity: small variances, where the short
        # covariance update would lose symmetry first.
        run("constant velocity, precise", "constant_velocity", 1e-6, 101.3, 1e-4, 1e-6, 1e-6, seed=3),
        run("random walk, precise", "random_walk", 1e-8, 0.7, 1e-4, 0.0, 1e-7, seed=4),
    ]
    json.dump({"sequences": sequences}, sys.stdout)


if __name__ == "__main__":
    main()
