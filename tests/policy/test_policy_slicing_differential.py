"""Sliced and unsliced evaluation agree, on 100,000 random requests over generated policy sets.

Slicing leaves out policies whose scope cannot match the request. Cedar evaluates the scope before
the conditions, so the decision, the determining policies, the errors and the obligations must
all be identical with and without slicing. Eight random worlds, 12,500 requests each, each with
30 generated policies (permits and forbids; action ==/in/groups/unscoped; principal and resource
scopes by type, entity and ancestor; when/unless on attributes and context; conditions that
error), half of them with the built-in policies on top.

Cost: Cedar's own per-request floor (parsing the context) is most of the run time, so both
passes cost about the same per request; the sliced pass evaluates ~4 policies instead of ~32.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from policy_support import random_contexts, random_policies, random_requests, universe

from openfuse_policy.evaluator import Authorizer
from openfuse_policy.policy import PolicySet
from openfuse_policy.tiers import community_policies

WORLDS = 8
REQUESTS_PER_WORLD = 12_500
POLICIES_PER_WORLD = 30


def outcome(d):  # type: ignore[no-untyped-def]
    return (d.allowed, d.determining, d.errors, d.obligations)


@pytest.mark.slow
def test_sliced_and_unsliced_decisions_agree_on_100k_random_requests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = 0
    reasons: Counter[str] = Counter()
    with_errors = with_obligations = 0
    considered = evaluated_all = singles = 0
    timings = {True: 0.0, False: 0.0}
    for seed in range(WORLDS):
        rng = random.Random(seed)
        world = universe(rng)
        policies = PolicySet.parse(
            random_policies(rng, POLICIES_PER_WORLD, world.ids), source=f"generated-{seed}"
        )
        if seed % 2 == 0:
            policies = community_policies() + policies
        requests = random_requests(rng, REQUESTS_PER_WORLD, world, random_contexts(rng, 40))
        results = {}
        for slicing in (True, False):
            az = Authorizer(policies, slicing=slicing)
            t0 = time.perf_counter()
            results[slicing] = az.decide_batch(requests, world.store)
            timings[slicing] += time.perf_counter() - t0
        for i, (a, b) in enumerate(zip(results[True], results[False], strict=True)):
            assert outcome(a) == outcome(b), (
                f"seed {seed} request {i}: {requests[i]}\nsliced   {a}\nunsliced {b}"
            )
        # decide() has a path of its own for the enforcement point's case (uids, nothing carried):
        # every 10th request again, one at a time, must come out as in the batch.
        single = Authorizer(policies)
        for i in range(0, len(requests), 10):
            d = single.decide(requests[i], world.store)
            assert outcome(d) == outcome(results[True][i]), (
                f"seed {seed} request {i}: {requests[i]}\ndecide() {d}\nbatch    {results[True][i]}"
            )
            singles += 1
        total += len(requests)
        reasons.update(d.reason for d in results[True])
        with_errors += sum(bool(d.errors) for d in results[True])
        with_obligations += sum(bool(d.obligations) for d in results[True])
        considered += sum(d.considered for d in results[True])
        evaluated_all += sum(d.considered for d in results[False])

    assert total >= 100_000 and singles >= 10_000
    # The comparison means something only if every kind of outcome occurred.
    assert min(reasons["permit"], reasons["forbid"], reasons["default-deny"]) > total // 20, reasons
    assert with_errors > 1000 and with_obligations > 1000
    # And slicing did cut the work: a slice is on average a small part of the set.
    assert considered < evaluated_all / 5
    with capsys.disabled():
        print(
            f"\n[differential] {total:,} requests: sliced {timings[True]:.1f}s "
            f"({timings[True] / total * 1e6:.0f} us/decision, avg slice {considered / total:.1f} policies), "
            f"unsliced {timings[False]:.1f}s ({timings[False] / total * 1e6:.0f} us/decision, "
            f"{evaluated_all / total:.0f} policies); outcomes {dict(reasons)}, "
            f"{with_errors:,} with errors, {with_obligations:,} with obligations"
        )
