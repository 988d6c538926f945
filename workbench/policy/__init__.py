"""Bucket policies as code: lifecycle, generation pruning, CORS, Transfer Acceleration, access documents.

Each policy can be diffed against the live bucket, applied, and verified.
"""

from workbench.policy.acceleration import acceleration_status, set_acceleration
from workbench.policy.access import org_policy
from workbench.policy.cors import (
    CorsDiagnosis,
    apply_cors,
    cors_rules,
    diagnose_cors,
    diff_cors,
    verify_cors,
)
from workbench.policy.diff import RuleDiff
from workbench.policy.generations import PruneResult, prune_generations
from workbench.policy.lifecycle import (
    apply_lifecycle,
    default_transitions,
    diff_lifecycle,
    enable_archive_tiers,
    lifecycle_rules,
    verify_lifecycle,
)

__all__ = [
    "CorsDiagnosis", "PruneResult", "RuleDiff", "acceleration_status", "apply_cors", "apply_lifecycle",
    "cors_rules", "default_transitions", "diagnose_cors", "diff_cors", "diff_lifecycle", "enable_archive_tiers",
    "lifecycle_rules", "org_policy", "prune_generations", "set_acceleration", "verify_cors", "verify_lifecycle",
]
