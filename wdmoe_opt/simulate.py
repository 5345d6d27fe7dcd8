"""An online serving simulation of WDMoE inference on SimPy (a discrete-event engine).

What happens, in simulated seconds:

* **Requests** arrive as a Poisson process (``rate_per_s``) during ``duration_s``;
  each has a prompt of ``prompt_min..prompt_max`` tokens and asks for
  ``output_min..output_max`` new tokens (uniform). A token's router weights are a row
  of a pool drawn once from the ``wdmoe-sim`` gating generator (``pool_tokens`` rows).
* **The server** (one base station) takes up to ``max_batch`` waiting requests
  (first come, first served), runs their *prefill* as one batch of all prompt
  tokens, then *decodes* token by token: step ``t`` carries one token of every
  request that still wants more than ``t`` tokens; a request finishes at the end of
  its last step. Then it takes the next batch. Each step is one WDMoE forward pass:
  its latency is the model's ``T = sum_i max_k t[i, k]`` (eqs. 10-11, 19) on the
  *true* channels, with the selection and bandwidth the policy chose on the
  *estimated* ones.
* **Devices move** by random waypoint in the annulus ``min_distance_m..cell_radius_m``
  around the base station (a new uniform target and speed ``speed_min..max_mps`` at
  each arrival). At the start of each batch the channel is drawn at the devices'
  positions: ``g = 10^(-PL(d)/10) X`` with the path loss of ``generate.channels`` and
  ``X ~ Exp(1)`` (Rayleigh fading of unit mean power; ``fading="none"``: ``X = 1``),
  one draw per device and direction, held for the batch (block fading).
* **The base station estimates** the gains with error: ``g = g_hat * delta``,
  ``10 log10 delta ~ N(0, sigma_db^2)`` (SPEC §8), and decides on ``g_hat``.
* **Energy** is the transmit energy (eq. of :func:`model.latency.transmit_energy_j`)
  on the true channels, summed over every step.

Policies (:data:`POLICIES`; selection then bandwidth):

=================  ==========================  =====================================
name               selection (P2)              bandwidth (P3), on the estimate
=================  ==========================  =====================================
``wdmoe``          Algorithm 1 (``p2/alg1``)   ``p3/exact`` (the paper's WDMoE)
``topk-uniform``   router Top-K                uniform ``B / U`` (the baseline)
``wdmoe-robust``   Algorithm 1                 ``p3/robust`` mean over ``scenarios``
``alg2-online``    Algorithm 2, learning       ``p3/exact``
=================  ==========================  =====================================

Steps whose selections do not depend on earlier measurements (all but Algorithm 2)
are solved together: every decode step of a batch is one call of
:func:`wdmoe_opt.batch.solve_p3` (or :func:`~wdmoe_opt.batch.solve_p3_robust`).
Algorithm 2 (:class:`~wdmoe_opt.selection.alg2.Alg2Policy`) observes after each
step the device times times a log-normal measurement noise of ``measure_noise``
(relative std.), so its steps run one by one (a batch of one).

**Hook for other decode policies** (e.g. SiftMoE's): :func:`register_selector`
adds a selection rule by name; a :class:`Policy` names it. A selector is a factory
``(template Instance, SimConfig) -> Selector``, whose ``select(instance)`` returns a
:class:`~wdmoe_opt.model.Selection` for one step (the instance carries the step's
router weights and the *estimated* gains) and whose ``observe(device_time_s,
pairs)`` receives the measured ``[I, U]`` device times and (token, expert) pairs
after each step; ``sequential = True`` makes steps run one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import batch as batch_api
from .errors import InputError
from .generate import generate
from .generate.channels import path_loss_db
from .model import Instance, Selection
from .model import latency as lat
from .options import Options, option
from .problems import SelectionProblem
from .selection.alg1 import Alg1Options, algorithm1
from .selection.alg2 import Alg2Policy
from .selection.common import LayerTimes

#: The carrier of the ``wdmoe-sim`` preset (the path loss of ``generate.channels``).
_CARRIER_GHZ = 3.5


@dataclass(frozen=True)
class SimConfig(Options):
    """Every knob of a simulation run (SI units)."""

    duration_s: float = option(120.0, "positive", "arrivals happen during this time")
    drain_s: float = option(600.0, "nonnegative", "time after the arrivals to finish the queue")
    rate_per_s: float = option(0.5, "positive", "Poisson arrival rate of requests")
    prompt_min: int = option(16, "positive_int", "fewest prompt tokens")
    prompt_max: int = option(64, "positive_int", "most prompt tokens")
    output_min: int = option(4, "positive_int", "fewest generated tokens")
    output_max: int = option(16, "positive_int", "most generated tokens")
    max_batch: int = option(8, "positive_int", "requests per prefill batch")
    layers: int = option(32, "positive_int", "MoE layers I")
    devices: int = option(8, "positive_int", "devices U (one expert each)")
    top_k: int = option(2, "positive_int", "router Top-K")
    pool_tokens: int = option(2048, "positive_int", "router-weight rows drawn once")
    cell_radius_m: float = option(500.0, "positive", "outer radius of the cell")
    min_distance_m: float = option(50.0, "positive", "inner radius of the cell")
    speed_min_mps: float = option(0.5, "nonnegative", "slowest device speed")
    speed_max_mps: float = option(2.0, "nonnegative", "fastest device speed")
    fading: str = option("rayleigh", ("rayleigh", "none"), "small-scale fading per batch")
    sigma_db: float = option(2.0, "nonnegative", "channel-estimate error (log-normal, dB)")
    measure_noise: float = option(0.1, "nonnegative",
                                  "relative std. of measured latencies (Algorithm 2)")
    scenarios: int = option(16, "positive_int", "scenarios of the robust bandwidth")
    deviation_budget: float = option(1.5, "positive", "siftmoe: the deviation budget eps "
                                     "(SPEC §6) of its P4 selection")
    seed: int = option(0, "nonnegative_int", "seed of every random draw")

    def check(self) -> None:
        """:meth:`validate` plus the rules between fields."""
        self.validate("simulate")
        for lo, hi in (("prompt_min", "prompt_max"), ("output_min", "output_max"),
                       ("speed_min_mps", "speed_max_mps"), ("min_distance_m", "cell_radius_m")):
            if getattr(self, lo) > getattr(self, hi):
                raise InputError(lo, f"must not exceed {hi} ({getattr(self, hi)})",
                                 getattr(self, lo))
        if self.top_k > self.devices:
            raise InputError("top_k", f"must not exceed devices ({self.devices})", self.top_k)


# ------------------------------------------------------------------ selectors (P2)

class _Stateless:
    sequential = False

    def observe(self, device_time_s, pairs) -> None:
        """Stateless rules learn nothing."""


class _TopK(_Stateless):
    def __init__(self, template: Instance, config: SimConfig):
        self.k = config.top_k

    def select(self, instance: Instance) -> Selection:
        return Selection(batch_api.topk_masks(instance.gating_weights, self.k))


class _Alg1(_Stateless):
    """Algorithm 1 at the uniform split of the estimated channel (as the paper)."""

    def __init__(self, template: Instance, config: SimConfig):
        self.options = Alg1Options()

    def select(self, instance: Instance) -> Selection:
        sel, _ = algorithm1(LayerTimes(SelectionProblem(instance)), self.options)
        return Selection(sel.mask())


class _Alg2:
    """Algorithm 2 learning online from the measured (noisy) device times."""

    sequential = True

    def __init__(self, template: Instance, config: SimConfig):
        self.policy = Alg2Policy(template)

    def select(self, instance: Instance) -> Selection:
        return self.policy.select(instance)

    def observe(self, device_time_s, pairs) -> None:
        self.policy.observe(device_time_s, pairs)


class _SiftMoE(_Stateless):
    """SiftMoE's selection (P4, ``p4/relax``): per forward pass, the least-energy keep /
    replace / skip actions within the deviation budget, at the uniform split of the
    estimated channel. The similarity tables are drawn once per run from the seed
    (``generate.similarity``: two clusters of near-duplicate experts)."""

    def __init__(self, template: Instance, config: SimConfig):
        from .generate.similarity import synthetic_similarity
        rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(7)[-1])
        self.similarity = synthetic_similarity(rng, template.n_layers, template.n_experts)
        self.budget = config.deviation_budget

    def select(self, instance: Instance) -> Selection:
        from .energy.problem import EnergyProblem
        from .registry import get_method
        problem = EnergyProblem(instance.replace(similarity=self.similarity), self.budget)
        return get_method("p4/relax")(problem).selection


SELECTORS: dict[str, Callable] = {"topk": _TopK, "alg1": _Alg1, "alg2": _Alg2,
                                  "siftmoe": _SiftMoE}


def register_selector(name: str, factory: Callable) -> None:
    """Add a decode-time selection rule (the hook for SiftMoE's policy; module docstring)."""
    SELECTORS[name] = factory


@dataclass(frozen=True)
class Policy:
    """A selection rule (a :data:`SELECTORS` name) and a bandwidth rule
    (``uniform``, ``exact`` or ``robust``)."""

    name: str
    selection: str
    bandwidth: str


POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("wdmoe", "alg1", "exact"),
    Policy("topk-uniform", "topk", "uniform"),
    Policy("wdmoe-robust", "alg1", "robust"),
    Policy("alg2-online", "alg2", "exact"),
    Policy("siftmoe", "siftmoe", "exact"),
)}


# ------------------------------------------------------------------ the world

class Mobility:
    """Random waypoint in the annulus ``min_distance_m..cell_radius_m`` (BS at 0)."""

    def __init__(self, config: SimConfig, rng: np.random.Generator):
        self.config, self.rng = config, rng
        U = config.devices
        self.position = self._points(U)
        self.target = self._points(U)
        self.speed = rng.uniform(config.speed_min_mps, config.speed_max_mps, U)
        self.time = 0.0

    def _points(self, n: int) -> np.ndarray:
        c = self.config
        r = np.sqrt(self.rng.uniform(c.min_distance_m ** 2, c.cell_radius_m ** 2, n))
        phi = self.rng.uniform(0.0, 2 * np.pi, n)
        return np.c_[r * np.cos(phi), r * np.sin(phi)]

    def distance_m(self, now: float) -> np.ndarray:
        """Distances at ``now`` (moving every device there first)."""
        for k in range(self.config.devices):
            left = now - self.time
            while left > 0 and self.speed[k] > 0:
                gap = self.target[k] - self.position[k]
                dist = float(np.hypot(*gap))
                if dist > self.speed[k] * left:
                    self.position[k] += gap * (self.speed[k] * left / dist)
                    break
                self.position[k] = self.target[k].copy()
                left -= dist / self.speed[k]
                self.target[k] = self._points(1)[0]
                self.speed[k] = self.rng.uniform(self.config.speed_min_mps,
                                                 self.config.speed_max_mps)
        self.time = max(self.time, now)
        return np.maximum(np.hypot(self.position[:, 0], self.position[:, 1]),
                          self.config.min_distance_m)


@dataclass
class Request:
    """One request: its arrival, sizes, router-weight rows and its finish time."""

    id: int
    arrival_s: float
    prompt: np.ndarray          # pool rows of the prompt tokens
    output: np.ndarray          # pool rows of the generated tokens, one per decode step
    finish_s: float | None = None

    @property
    def output_tokens(self) -> int:
        return int(self.output.size)


@dataclass
class PolicyRun:
    """Everything one policy's run produced."""

    policy: str
    requests: list[Request]
    energy_j: float = 0.0
    steps: int = 0
    batches: int = 0
    end_s: float = 0.0
    step_latency_s: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """Arrived, finished, latency percentiles (finished requests), energy, throughput."""
        done = [r for r in self.requests if r.finish_s is not None]
        latency = np.array([r.finish_s - r.arrival_s for r in done])
        tokens = sum(r.output_tokens for r in done)
        pct = (np.percentile(latency, [50, 95, 99]) if latency.size
               else np.full(3, np.nan))
        return {"policy": self.policy, "arrived": len(self.requests), "finished": len(done),
                "unfinished": len(self.requests) - len(done),
                "latency_p50_s": float(pct[0]), "latency_p95_s": float(pct[1]),
                "latency_p99_s": float(pct[2]),
                "latency_mean_s": float(latency.mean()) if latency.size else float("nan"),
                "energy_j": self.energy_j,
                "energy_per_token_j": self.energy_j / tokens if tokens else float("nan"),
                "throughput_tokens_per_s": tokens / self.end_s if self.end_s else 0.0,
                "batches": self.batches, "steps": self.steps}


class Simulation:
    """One run of one policy (:meth:`run`); the same seed gives the same world to
    every policy (arrivals, sizes, mobility and fading streams start alike)."""

    def __init__(self, config: SimConfig, policy: Policy,
                 arrivals: Sequence[tuple[float, int, int]] | None = None,
                 progress: Callable[[float], None] | None = None):
        config.check()
        if policy.selection not in SELECTORS:
            raise InputError("policy.selection", "must be one of " + ", ".join(SELECTORS),
                             policy.selection)
        if policy.bandwidth not in ("uniform", "exact", "robust"):
            raise InputError("policy.bandwidth", "must be one of uniform, exact, robust",
                             policy.bandwidth)
        self.config, self.policy, self.progress = config, policy, progress
        # one stream per source of randomness, so every policy sees the same arrivals,
        # tokens, mobility, fading and estimate errors (batching differs, draws do not)
        seeds = np.random.SeedSequence(config.seed).spawn(6)
        self.rng_arrivals, self.rng_mobility, self.rng_fading, self.rng_error, \
            self.rng_measure, self.rng_scenarios = (np.random.default_rng(s) for s in seeds)
        self.template = generate("wdmoe-sim", seed=config.seed, tokens=config.pool_tokens,
                                 layers=config.layers, devices=config.devices,
                                 experts=config.devices, top_k=config.top_k)
        self.pool = self.template.gating_weights                     # [I, pool, E]
        self.mobility = Mobility(config, self.rng_mobility)
        self.selector = SELECTORS[policy.selection](self.template, config)
        if arrivals is None:
            arrivals = self._arrivals()
        rows = self.pool.shape[1]
        #: ``(arrival time, request)`` in time order, token rows drawn up front.
        self.arrivals = [(float(t), Request(n, float(t), self.rng_arrivals.integers(0, rows, a),
                                            self.rng_arrivals.integers(0, rows, b)))
                         for n, (t, a, b) in enumerate(arrivals)]

    def _arrivals(self) -> list[tuple[float, int, int]]:
        """Poisson arrival times in ``[0, duration_s)`` with prompt and output sizes."""
        c, rng = self.config, self.rng_arrivals
        out, t = [], rng.exponential(1.0 / c.rate_per_s)
        while t < c.duration_s:
            out.append((t, int(rng.integers(c.prompt_min, c.prompt_max + 1)),
                        int(rng.integers(c.output_min, c.output_max + 1))))
            t += rng.exponential(1.0 / c.rate_per_s)
        return out

    # -- one batch ----------------------------------------------------------------------
    def channels(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """True and estimated gains ``[2, U]`` (down, up) at ``now``."""
        U = self.config.devices
        mean = 10.0 ** (-path_loss_db(self.mobility.distance_m(now), _CARRIER_GHZ) / 10.0)
        fade = (self.rng_fading.exponential(size=(2, U)) if self.config.fading == "rayleigh"
                else np.ones((2, U)))
        true = mean * fade
        error = 10.0 ** (self.config.sigma_db * self.rng_error.standard_normal((2, U)) / 10.0)
        return true, true / error

    def step_instance(self, rows: np.ndarray, gains: np.ndarray) -> Instance:
        """The instance of one forward pass: those pool rows, those gains."""
        return self.template.replace(
            name="step", gating_weights=self.pool[:, rows, :],
            system=replace(self.template.system, gain_down=gains[0], gain_up=gains[1]))

    def solve_steps(self, steps: list[np.ndarray], true: np.ndarray, est: np.ndarray):
        """Selections and bandwidths of some steps (one batch-API call), then their
        latency and energy on the true channels: ``(latency_s [N], energy_j [N],
        device_time_s [N, I, U], pairs [N, I, U])``."""
        sels = [self.selector.select(self.step_instance(rows, est)) for rows in steps]
        loads = [lat.device_loads(self.template, sel) for sel in sels]
        u = np.stack([x for x, _ in loads])
        p = np.stack([y for _, y in loads])
        n, U = len(steps), self.config.devices

        def on(gains):                      # the steps' P3 data on those gains
            return batch_api.P3Batch.from_loads(self.template, u, p,
                                                np.broadcast_to(gains[0], (n, U)),
                                                np.broadcast_to(gains[1], (n, U)))

        if self.policy.bandwidth == "uniform":
            bw = np.broadcast_to(lat.uniform_bandwidth_hz(self.template), (n, U))
        elif self.policy.bandwidth == "exact":
            bw = batch_api.solve_p3(on(est)).bandwidth_hz
        else:
            bw = batch_api.solve_p3_robust(on(est), self.config.sigma_db,
                                           self.config.scenarios,
                                           seed=self.rng_scenarios).bandwidth_hz
        actual = on(true)
        t = actual.device_time_s(bw)
        s = self.template.system
        energy = actual.transmit_energy_j(bw, s.bs_power_w, s.tx_power_w)
        return t.max(axis=-1).sum(axis=-1), energy, t, p

    def measure(self, device_time_s: np.ndarray) -> np.ndarray:
        """Measured device times: true times times log-normal noise."""
        sd = self.config.measure_noise
        return device_time_s * np.exp(sd * self.rng_measure.standard_normal(device_time_s.shape))

    # -- the event loop ----------------------------------------------------------------
    def run(self) -> PolicyRun:
        import simpy

        env = simpy.Environment()
        queue = simpy.Store(env)
        out = PolicyRun(self.policy.name, [])
        c = self.config

        def source():
            for t, req in self.arrivals:
                yield env.timeout(max(t - env.now, 0.0))
                out.requests.append(req)
                yield queue.put(req)

        def server():
            while True:
                batch = [(yield queue.get())]
                while queue.items and len(batch) < c.max_batch:
                    batch.append((yield queue.get()))
                yield from self.serve(env, batch, out)
                if self.progress:
                    self.progress(min(env.now, c.duration_s + c.drain_s))

        env.process(source())
        env.process(server())
        env.run(until=c.duration_s + c.drain_s)
        out.end_s = max([r.finish_s for r in out.requests if r.finish_s is not None],
                        default=0.0)
        return out

    def serve(self, env, batch: list[Request], out: PolicyRun):
        """Prefill then decode one batch of requests (a SimPy sub-process)."""
        true, est = self.channels(env.now)
        out.batches += 1
        longest = max(r.output_tokens for r in batch)
        steps = [np.concatenate([r.prompt for r in batch])]      # prefill
        for t in range(longest):                                  # decode
            steps.append(np.array([r.output[t] for r in batch if r.output_tokens > t]))
        chunk = 1 if self.selector.sequential else len(steps)
        for start in range(0, len(steps), chunk):
            part = steps[start:start + chunk]
            latency, energy, times, pairs = self.solve_steps(part, true, est)
            for j in range(len(part)):
                self.selector.observe(self.measure(times[j]), pairs[j])
                yield env.timeout(float(latency[j]))
                out.steps += 1
                out.energy_j += float(energy[j])
                out.step_latency_s.append(float(latency[j]))
                t = start + j                        # step index; decode step t - 1
                for r in batch:
                    if t >= 1 and r.output_tokens == t:
                        r.finish_s = env.now


def simulate(config: SimConfig, policies: Sequence[str] = tuple(POLICIES),
             progress: Callable[[str, float], None] | None = None) -> list[PolicyRun]:
    """Run every named policy of :data:`POLICIES` on the same seeded world."""
    for name in policies:
        if name not in POLICIES:
            raise InputError("policy", "must be one of " + ", ".join(POLICIES), name)
    runs = []
    for name in policies:
        report = None if progress is None else (lambda now, n=name: progress(n, now))
        runs.append(Simulation(config, POLICIES[name], progress=report).run())
    return runs


def plot_runs(runs: Sequence[PolicyRun], path) -> None:
    """Latency CDF, percentiles and energy per token of every policy (PNG at ``path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [r.policy for r in runs]
    stats = [r.summary() for r in runs]
    for r in runs:
        lat_s = np.sort([q.finish_s - q.arrival_s for q in r.requests if q.finish_s is not None])
        axes[0].step(lat_s, np.arange(1, lat_s.size + 1) / max(lat_s.size, 1), where="post",
                     label=r.policy)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("request latency (s)")
    axes[0].set_ylabel("fraction of requests")
    axes[0].set_title("latency CDF", fontsize=10)
    axes[0].legend(fontsize=8)
    x = np.arange(len(runs))
    for j, key in enumerate(("latency_p50_s", "latency_p95_s", "latency_p99_s")):
        axes[1].bar(x + (j - 1) * 0.27, [s[key] for s in stats], 0.27, label=key[8:11])
    axes[1].set_xticks(x, names, rotation=15, fontsize=8)
    axes[1].set_ylabel("seconds")
    axes[1].set_title("latency percentiles", fontsize=10)
    axes[1].legend(fontsize=8)
    axes[2].bar(x, [s["energy_per_token_j"] for s in stats], color="tab:gray")
    axes[2].set_xticks(x, names, rotation=15, fontsize=8)
    axes[2].set_ylabel("J per generated token")
    axes[2].set_title("transmit energy", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
