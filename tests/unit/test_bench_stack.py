"""localdev.bench_stack without starting anything: a given stack's outputs are used as they are, a missing one
is one clear line."""

from __future__ import annotations

import pytest

from localdev.bench_stack import NoStack, bench_stack


def test_a_running_stack_is_measured_through_its_outputs_and_a_missing_one_is_a_clear_error(tmp_path):
    outputs = tmp_path / "outputs.json"
    with pytest.raises(NoStack, match=r"^bench_x: no stack outputs at .*outputs.json: run make local-up or pass --own-stack$"):
        with bench_stack("bench_x", outputs):
            pass
    outputs.write_text("{}")
    with bench_stack("bench_x", outputs) as path:
        assert path == outputs
