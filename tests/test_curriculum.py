import pytest

from seqvad.config import DEFAULTS
from seqvad.curriculum import KNOWN_TASKS, Phase, Schedule
from seqvad.errors import ConfigError


def test_paper_order_adds_one_task_per_phase():
    schedule = Schedule.parse("pre,rec,cls", epochs=[3, 4, 5], lr=1e-3)
    assert [p.tasks for p in schedule.phases] == [["pre"], ["pre", "rec"], ["pre", "rec", "cls"]]
    assert [p.epochs for p in schedule.phases] == [3, 4, 5]
    assert [p.name for p in schedule.phases] == ["phase1-pre", "phase2-pre+rec", "phase3-pre+rec+cls"]
    assert schedule.phases[2].weights == {"pre": 1.0, "rec": 1.0, "cls": 1.0}
    assert schedule.total_epochs() == 12


def test_any_permutation_is_a_valid_order():
    schedule = Schedule.parse("rec,cls,pre", epochs=2)
    assert [p.tasks for p in schedule.phases] == [["rec"], ["rec", "cls"], ["rec", "cls", "pre"]]
    assert all(p.epochs == 2 for p in schedule.phases)


def test_single_task_is_one_phase():
    schedule = Schedule.parse("pre", epochs=[7])
    assert len(schedule.phases) == 1 and schedule.phases[0].tasks == ["pre"]
    assert schedule.phases[0].epochs == 7


def test_simultaneous_with_weights_is_one_phase_of_summed_epochs():
    schedule = Schedule.parse("simultaneous:pre=3,rec=2,cls=1", epochs=[10, 10, 10], lr=5e-4)
    (phase,) = schedule.phases
    assert phase.tasks == ["pre", "rec", "cls"]
    assert phase.weights == {"pre": 3.0, "rec": 2.0, "cls": 1.0}
    assert phase.epochs == 30 and phase.lr == 5e-4
    assert phase.name.startswith("simultaneous")


def test_plain_simultaneous_means_equal_weights_over_the_three_tasks():
    (phase,) = Schedule.parse("simultaneous", epochs=6).phases
    assert phase.tasks == ["pre", "rec", "cls"] and phase.epochs == 6
    assert set(phase.weights.values()) == {1.0}


def test_unknown_task_names_are_named_in_the_error():
    with pytest.raises(ConfigError, match="foo.*bar|foo, bar"):
        Schedule.parse("pre,foo,bar")
    with pytest.raises(ConfigError, match="xyz"):
        Schedule.parse("simultaneous:pre=1,xyz=2")
    with pytest.raises(ConfigError, match="nope"):
        Schedule.from_config({"order": "pre", "weights": {"nope": 1}})


@pytest.mark.parametrize("cfg, message", [
    ({"order": "pre,rec,cls", "epochs": [1, 2]}, "epochs: 2 values for 3"),
    ({"order": "pre,rec", "lr": [1e-3, 1e-3, 1e-3]}, "lr: 3 values for 2"),
    ({"order": "pre,pre"}, "twice"),
    ({"order": "pre", "epochs": 0}, "epochs"),
    ({"order": "pre", "lr": -1.0}, "lr"),
    ({"order": "pre", "weights": {"pre": -2}}, "weights.pre"),
    ({"order": "pre=abc"}, "not a number"),
    ({"order": ""}, "order"),
    ({"order": "pre", "speed": 3}, "unknown keys speed"),
    ({"phases": [{"tasks": ["pre"], "epochs": 1, "colour": 1}]}, "colour"),
])
def test_bad_schedules_raise_config_error(cfg, message):
    with pytest.raises(ConfigError, match=message):
        Schedule.from_config(cfg)


def test_default_config_section_gives_the_paper_schedule():
    schedule = Schedule.from_config(DEFAULTS["schedule"])
    assert [p.tasks for p in schedule.phases] == [["pre"], ["pre", "rec"], ["pre", "rec", "cls"]]
    assert not any(p.reset_optimizer for p in schedule.phases)


def test_per_phase_lists_and_yaml_string_learning_rate():
    schedule = Schedule.from_config({"order": "pre,rec", "epochs": 2, "lr": ["1e-3", 1e-4],
                                     "reset_optimizer": [False, True]})
    assert [p.lr for p in schedule.phases] == [1e-3, 1e-4]
    assert [p.reset_optimizer for p in schedule.phases] == [False, True]


def test_section_weights_apply_to_the_phases_holding_the_task_and_order_weights_override():
    schedule = Schedule.from_config({"order": "pre,rec=0.5", "epochs": 1, "weights": {"pre": 2, "rec": 3, "cls": 9}})
    assert schedule.phases[0].weights == {"pre": 2.0}
    assert schedule.phases[1].weights == {"pre": 2.0, "rec": 0.5}


def test_explicit_phases_take_missing_keys_from_the_section():
    schedule = Schedule.from_config({"epochs": 4, "lr": 1e-3, "phases": [
        {"tasks": ["pre"]},
        {"tasks": "pre,cls", "epochs": 2, "lr": 1e-4, "weights": {"cls": 0.5}, "reset_optimizer": True},
    ]})
    first, second = schedule.phases
    assert (first.tasks, first.epochs, first.lr) == (["pre"], 4, 1e-3)
    assert (second.tasks, second.epochs, second.lr, second.reset_optimizer) == (["pre", "cls"], 2, 1e-4, True)
    assert second.weights == {"pre": 1.0, "cls": 0.5}


def test_sparsity_is_a_known_task_and_phase_validates_itself():
    assert "sps" in KNOWN_TASKS
    assert Phase(tasks=["pre", "sps"], epochs=1).weights == {"pre": 1.0, "sps": 1.0}
    with pytest.raises(ConfigError, match="at least one task"):
        Phase(tasks=[], epochs=1)
    with pytest.raises(ConfigError, match="one phase"):
        Schedule([])
