"""Resources per algorithm: what an algorithm asks for, what the workers give, and the refusal before submission.

A Millepede alignment wants eight cores and 16 GB where a pedestal fit wants one core
and little memory. The steering script says what an algorithm needs,

    runner_for("mysite", resources={"MillepedeAlgorithm": {"cores": 8, "memory": "16GB"}})

(or the site's ``runner.resources``), and the site config says which workers give it:
the default pool of its ``cluster`` section, and named ``pools`` of their own (see
``caf_hpc.sites.pools``). Each run checks every algorithm against what its target can
give before the first strategy is submitted, and refuses one that nothing can run,
naming the algorithm, what it asks for and what the site has: without the check, Dask
would keep such a task waiting for a worker that never comes.

What the workers give is known three ways:

- a batch site from its config: the default pool gives ``cluster.cores / processes``
  and ``cluster.memory / processes`` per worker, each pool likewise. On a site with
  pools every worker declares them as Dask worker resources (``--resources``) and every
  strategy asks for at least one core, so that Dask places it on a worker with room and
  no worker runs more than its cores at once;
- the local default and a local site from the connected workers' threads and memory
  limits (all alike: nothing to declare, the check alone);
- a scheduler given by ``address``: the Dask resources its workers declare, or, where
  none declares any, their threads and memory limits.

Memory is also what the strategy may use: its worker ends it past what it asked for, or
past its worker's memory limit (``caf_hpc.worker.memory``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import checks

CORES = "cores"
MEMORY = "memory"
#: The resources every worker has; a site's pools may declare others (``gpus``, ...).
KNOWN = (CORES, MEMORY)
#: Where the keys are explained, for messages.
DOCS = "docs/site-configs.md, 'Resources per algorithm'"
#: How long the check waits for the local cluster's first worker, to see what its workers give.
LOCAL_WAIT = 60.0
#: What a strategy takes when it asks for nothing, on a site whose workers declare resources.
ONE_CORE = {CORES: 1.0}


class ResourceError(ValueError):
    """What an algorithm asks for cannot be had; the message names the algorithm, the request and what exists."""


# --------------------------------------------------------------------------- amounts: parsing and writing
def amount(name: str, value: Any) -> tuple[float | None, str | None]:
    """``(amount, None)`` or ``(None, what is wrong)`` for one resource: memory in bytes ("16GB", "3.5GiB" or a
    number of bytes), any other a positive number."""
    if name == MEMORY:
        from dask.utils import parse_bytes

        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value), None
        try:
            parsed = parse_bytes(value) if isinstance(value, str) and any(c.isdigit() for c in value) else 0
        except (ValueError, TypeError):
            parsed = 0
        if parsed > 0:
            return float(parsed), None
        return None, f"{value!r} is not an amount of memory; write e.g. '16GB' or '3.5GiB'"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
        return float(value), None
    return None, f"expected a positive number, got {value!r}"


def amounts(value: Any, where: str) -> tuple[dict, list[str]]:
    """One algorithm's request (or one pool's extra resources): ``{name: amount}`` and the problems found,
    each starting with ``where``."""
    if not isinstance(value, Mapping):
        return {}, [f"{where}: expected a mapping such as {{cores: 8, memory: 16GB}}, got {value!r}"]
    found: dict[str, float] = {}
    problems = []
    for name, given in value.items():
        name = str(name)
        if name not in KNOWN and checks.closest(name, KNOWN):
            problems.append(f"{where}.{name}: unknown resource; did you mean {checks.closest(name, KNOWN)!r}? "
                            f"Every worker has {' and '.join(KNOWN)}; other names are those a site's pools declare")
            continue
        parsed, problem = amount(name, given)
        if parsed is None:
            problems.append(f"{where}.{name}: {problem}")
        else:
            found[name] = parsed
    return found, problems


def requests(value: Any, where: str = "resources") -> tuple[dict, list[str]]:
    """``{algorithm name: {resource: amount}}`` from ``resources={...}`` or a site's ``runner.resources``."""
    if value is None:
        return {}, []
    if not isinstance(value, Mapping):
        return {}, [f"{where}: expected a mapping of algorithm names to what each needs, e.g. "
                    f"{{'MillepedeAlgorithm': {{'cores': 8, 'memory': '16GB'}}}}, got {type(value).__name__}"]
    found, problems = {}, []
    for name, asked in value.items():
        parsed, more = amounts(asked, f"{where}.{name}")
        problems += more
        if not more:
            found[str(name)] = parsed
    return found, problems


def site_value(value: Any) -> tuple[Any, str | None]:
    """The value kind of a site's ``runner.resources`` (``schema.RUNNER_KEYS``): normalised, or what is wrong."""
    found, problems = requests(value, "")
    if problems:
        return value, "; ".join(problem.lstrip(".") for problem in problems)
    return found, None


def describe(given: Mapping[str, float]) -> str:
    """``cores=8, memory=16 GB``: for messages."""
    return ", ".join(f"{name}={_shown(name, value)}" for name, value in sorted(given.items())) or "nothing"


def _shown(name: str, value: float) -> str:
    if name == MEMORY:
        return size(value)
    return f"{value:g}"


def size(value: float) -> str:
    """Bytes in the units a site config writes them (``16GB`` is 16e9 bytes, as Dask and dask-jobqueue read it)."""
    if math.isinf(value):
        return "no limit"
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= factor * 0.9995:  # 999.99 MB is "1 GB", not "1e+03 MB"
            return f"{value / factor:.3g} {unit}"
    return f"{value:.0f} B"


def worker_argument(given: Mapping[str, float]) -> str:
    """``cores=8,memory=16000000000``: the value of a Dask worker's ``--resources``."""
    return ",".join(f"{name}={value:.0f}" if name == MEMORY else f"{name}={value:g}" for name, value in given.items())


def fits(asked: Mapping[str, float], given: Mapping[str, float]) -> bool:
    return all(given.get(name, 0.0) >= value for name, value in asked.items())


# --------------------------------------------------------------------------- what a target gives
@dataclass(frozen=True)
class Offer:
    """What one kind of worker gives: ``label`` for messages, ``amounts`` per worker."""

    label: str
    amounts: Mapping[str, float]
    #: Workers that declare Dask resources: a strategy's request goes to Dask with it.
    declared: bool = False
    #: The workers' addresses, where the offer was read from connected workers.
    workers: tuple = ()


#: The default pool's name in messages.
DEFAULT_POOL = "the default pool (cluster)"


def per_worker(keys: Mapping[str, Any], extra: Mapping[str, float] | None = None) -> dict:
    """What one worker of a batch job with these cluster keys gives: its threads (dask-jobqueue's cores /
    processes), its memory limit (memory / processes), and a pool's extra resources."""
    from dask.utils import parse_bytes

    processes = keys.get("processes") or 1
    given = {CORES: float(int((keys.get("cores") or 1) / processes))}
    memory = keys.get("memory")
    if memory:
        given[MEMORY] = float((parse_bytes(memory) if isinstance(memory, str) else memory) / processes)
    given.update(extra or {})
    return given


def site_offers(site: Any) -> list[Offer]:
    """What a batch site's workers give, from its config: the default pool and each named pool."""
    found = [Offer(DEFAULT_POOL, per_worker(site.cluster), declared=bool(site.pools))]
    for name, pool in (site.pools or {}).items():
        found.append(Offer(f"pool {name!r} ({pool.get('jobs', 1)} job(s))",
                           per_worker({**site.cluster, **pool}, pool.get("resources")), declared=True))
    return found


def worker_offers(client: Any) -> list[Offer]:
    """What the connected workers give: declared resources if any worker declares some, else threads and memory."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    declared = any(info.get("resources") for info in workers.values())
    kinds: dict[tuple, list] = {}
    for address, info in workers.items():
        if declared:
            given = {str(k): float(v) for k, v in (info.get("resources") or {}).items()}
        else:
            given = {CORES: float(info.get("nthreads") or 1), MEMORY: float(info.get("memory_limit") or math.inf)}
        kinds.setdefault(tuple(sorted(given.items())), []).append(address)
    return [Offer(f"{len(addresses)} worker(s)", dict(key), declared, tuple(addresses))
            for key, addresses in kinds.items()]


# --------------------------------------------------------------------------- one run
@dataclass
class RunPlan:
    """What each algorithm of one run asks for, checked; what its submission carries (``submit_options``)."""

    calibration: str
    asked: dict = field(default_factory=dict)     # algorithm -> {resource: amount}, as the user wrote it
    source: str = ""                               # where the target's workers come from, for messages
    offers: list = field(default_factory=list)
    options: dict = field(default_factory=dict)   # algorithm -> client.submit keyword arguments
    remedy: str = ""

    def submit_options(self, name: str) -> dict:
        """Keyword arguments of ``client.submit`` for algorithm ``name``: ``resources=`` or ``workers=``, or none."""
        return dict(self.options.get(name, {}))

    def memory_limit(self, name: str) -> int | None:
        """The memory algorithm ``name`` asked for, in bytes, which its worker holds it to; None if it asked none."""
        memory = self.asked.get(name, {}).get(MEMORY)
        return int(memory) if memory else None

    def able_workers(self, client: Any, name: str) -> int:
        """How many connected workers could run algorithm ``name`` now (for the wait for a worker)."""
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        options = self.options.get(name, {})
        if "resources" in options:
            return sum(1 for info in workers.values() if fits(options["resources"], info.get("resources") or {}))
        if "workers" in options:
            return sum(1 for address in workers if address in options["workers"])
        return len(workers)

    def wanted(self, name: str) -> str:
        """`` that gives cores=8, memory=16 GB``, for the message of a strategy that found no worker; or nothing."""
        options = self.options.get(name, {})
        if "resources" in options:
            return f" that gives {describe(options['resources'])} (resources)"
        if "workers" in options:
            return f" among the {len(options['workers'])} that give {describe(self.asked[name])} (resources)"
        return ""

    def check(self, offers: list[Offer], source: str, remedy: str) -> None:
        """Refuses the first algorithm that no offer can run (``remedy`` says how to get such a worker); sets each
        one's submission options."""
        self.offers, self.source, self.remedy = offers, source, remedy
        declared = any(offer.declared for offer in offers)
        for name, asked in self.asked.items():
            able = [offer for offer in offers if fits(asked, offer.amounts)]
            if not able:
                raise ResourceError(self.refusal(name, asked))
            if declared:
                self.options[name] = {"resources": {**ONE_CORE, **asked}}
            elif len(able) < len(offers) and all(offer.workers for offer in offers):
                self.options[name] = {"workers": [w for offer in able for w in offer.workers]}

    def refusal(self, name: str, asked: Mapping[str, float]) -> str:
        has = "; ".join(f"{offer.label}: {describe(offer.amounts)}" for offer in self.offers) or "no worker"
        return (f"calibration {self.calibration}: algorithm {name} asks for {describe(asked)} (resources), and no "
                f"worker of {self.source} gives that. It has {has}. {self.remedy}, or ask for less")


def plan_run(calibration: str, names: list[str], settings: Any) -> RunPlan:
    """The run's plan before anything is submitted: every request checked against the algorithm names,
    and against a batch site's config (its pools). Other targets are checked once reached (``check_workers``)."""
    given: Mapping[str, Mapping[str, float]] = settings.resources or {}
    for asked_name in given:
        if asked_name in names:
            continue
        guess = checks.closest(asked_name, names)
        if guess and guess not in given:
            raise ResourceError(f"calibration {calibration}: resources name algorithm {asked_name!r}, which it does "
                                f"not have; did you mean {guess!r}? Its algorithms: {', '.join(names)} "
                                f"(runner_for(resources=...) or the site's runner.resources)")
    plan = RunPlan(calibration, {name: dict(given[name]) for name in names if name in given})
    site = settings.site_config
    if site is not None and site.is_batch:
        plan.check(site_offers(site), site.summary(), f"Add a pool that gives it to {site.source} (pools:, see {DOCS})")
        if site.pools:  # every strategy asks at least for a core there
            for name in names:
                plan.options.setdefault(name, {"resources": dict(ONE_CORE)})
    return plan


def check_workers(plan: RunPlan, client: Any, settings: Any) -> None:
    """For the local cluster and a scheduler given by address: checks the requests against the connected
    workers (none connected yet: nothing to check against; the wait for a worker counts only able ones)."""
    site = settings.site_config
    if not plan.asked or (site is not None and site.is_batch):
        return
    if not settings.address:  # the local cluster's workers are starting: what they give is known in a second or two
        try:
            client.wait_for_workers(1, timeout=min(settings.worker_wait, LOCAL_WAIT))
        except TimeoutError:
            return  # the wait for a worker says so
    offers = worker_offers(client)
    if not offers:
        return
    if settings.address:
        example = worker_argument(next(iter(plan.asked.values())))
        plan.check(offers, f"the Dask scheduler at {settings.address}",
                   f"Start a worker that declares it (dask worker ... --resources \"{example}\")")
    else:
        plan.check(offers, "the local Dask cluster", f"Run it on a batch site with a pool that gives it ({DOCS})")


def more_memory_hint(name: str) -> str:
    """How to give an algorithm that ran out of memory more of it, for the runner's message."""
    return (f"ask for the memory it needs (runner_for(resources={{{name!r}: {{'memory': '8GB'}}}}), or the site's "
            f"runner.resources) on a site whose workers have it (a pool with that memory: {DOCS})")


def collector_options(settings: Any) -> dict:
    """Keyword arguments of ``client.submit`` for a collector job: one core on a site whose workers declare their
    cores (a site with pools), so that a collector job and an 8-core alignment never share a worker's cores."""
    site = settings.site_config
    return {"resources": dict(ONE_CORE)} if site is not None and site.is_batch and site.pools else {}
