"""YAML configs the core tests share, small enough to read at a glance."""

THREE_SIMULATORS = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, timeout_ms: 500,
          breaker: {fail_max: 3, reset_timeout_s: 30}}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, timeout_ms: 500}
  sim_c: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - name: default
    strategy: priority
    processors: [sim_a, sim_b, sim_c]
retry_policies:
  default: {strategy: scheduled, schedule: [1d, 3d], max_attempts: 3, window: 14d}
"""

# sim_a is hard down for an hour from 09:00 on the tests' start day.
FIRST_DOWN = THREE_SIMULATORS.replace(
    "breaker: {fail_max: 3, reset_timeout_s: 30}}",
    "breaker: {fail_max: 3, reset_timeout_s: 30},\n"
    "          outages: [{start: '2026-11-02T09:00:00Z', minutes: 60, mode: down}]}",
)
