"""The ten-minute race (vit_lessons.race): contestants, the shared recipe, the report, resuming."""

import json

import pytest

import vit_lessons.race as race
from vit_lessons import count_parameters
from vit_lessons.race import CONTESTANTS, format_race, race_config, run_race


def _params(name: str) -> int:
    return count_parameters(CONTESTANTS[name].build(race_config(600, 0)))


def test_cct_contestants_have_the_published_sizes():
    pytest.importorskip("vit_pytorch")
    # Hassani et al. 2021, Table 1: CCT-2/3x2 0.28M, CCT-7/3x1 3.76M parameters on CIFAR-10
    assert round(_params("cct_2_3x2") / 1e6, 2) == 0.28
    assert round(_params("cct_7_3x1") / 1e6, 2) == 3.76


def test_timm_contestant_is_the_plain_vit_in_timms_code():
    pytest.importorskip("timm")
    model = CONTESTANTS["timm-vit"].build(race_config(600, 0))
    assert type(model).__module__.startswith("timm.")
    assert count_parameters(model) == _params("plain-vit") == 1_806_538


def test_every_contestant_shares_the_recipe_and_only_the_model_differs():
    config = race_config(123.0, 7)
    assert (config.time_budget, config.seed, config.name) == (123.0, 7, "cifar10-cpu")
    assert race_config(600, 0, lr=1e-3).lr == 1e-3


@pytest.mark.usefixtures("one_thread")
def test_a_tiny_race_reports_every_run_and_resumes(fake_cifar, tmp_path, monkeypatch):
    names = ["resnet9", "cifar10-cpu"]
    small = dict(per_class_train=4, per_class_test=2, batch_size=8, epochs=1)  # the cap ends each run
    report = run_race(names, 60.0, [0], tmp_path, data_dir=fake_cifar, command="python -m vit_lessons.race", **small)
    assert [(r["contestant"], r["seed"]) for r in report["results"]] == [("resnet9", 0), ("cifar10-cpu", 0)]
    assert report["results"][0]["params"] == 2_001_722
    assert all(0 <= r["test_accuracy"] <= 1 and r["images_per_second"] > 0 for r in report["results"])
    table = (tmp_path / "race.md").read_text()
    assert "resnet9" in table and "cifar10-cpu" in table and report["hardware"] in table
    assert json.loads((tmp_path / "race.json").read_text()) == report

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(race, "train", no_training)
    again = run_race(names, 60.0, [0], tmp_path, data_dir=fake_cifar, **small)
    assert again["results"] == report["results"]  # the interrupted race keeps what it finished


def test_unknown_contestants_and_bad_seeds_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown contestant.*choose from"):
        run_race(["resnet50"], 1.0, [0], tmp_path)
    with pytest.raises(SystemExit):
        race.main(["--seeds", "one", "--out", str(tmp_path)])
    assert "comma-separated integers" in capsys.readouterr().err


def test_the_table_gives_mean_and_std_over_seeds_best_first():
    results = [
        dict(contestant="resnet9", seed=s, test_accuracy=a, images_per_second=600, params=2_001_722, epochs=9)
        for s, a in [(0, 0.80), (1, 0.82), (2, 0.84)]
    ]
    results.append(dict(contestant="cct_2_3x2", seed=0, test_accuracy=0.9, images_per_second=900, params=1, epochs=3))
    for row in results:
        row["description"] = CONTESTANTS[row["contestant"]].description
    report = dict(hardware="cpu", budget=600, recipe="cifar10-cpu", precision="fp32", command="", results=results)
    table = format_race(report)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "contestant" not in line]
    assert lines[0].startswith("| cct_2_3x2") and "90.0%" in lines[0]
    assert "82.0 ± 2.0%" in lines[1] and "| 0,1,2 |" in lines[1]


def test_the_distillation_contestants_pass_their_teacher_and_the_recipe(tmp_path, monkeypatch):
    calls = []

    def fake_train(config, **kwargs):
        calls.append((config, kwargs))
        return dict(test_accuracy=0.5, images_per_second=10.0, params=1, epochs=1, wall_seconds=1.0)

    monkeypatch.setattr(race, "train", fake_train)
    names = ["plain-vit", "plain-vit+hard", "plain-vit+soft"]
    report = run_race(names, 300.0, [0, 1], tmp_path, recipe="cifar10-vit")
    assert len(report["results"]) == 6 and report["recipe"] == "cifar10-vit"
    assert {(c.name, c.time_budget) for c, _ in calls} == {("cifar10-vit", 300.0)}
    assert [c.seed for c, _ in calls] == [0, 0, 0, 1, 1, 1]
    taught = [(k["teacher"], k["distill"], k["distill_alpha"]) for _, k in calls[:3]]
    assert taught == [(None, "none", 0.5), ("cifar10_cnn", "hard", 0.5), ("cifar10_cnn", "soft", 0.1)]
    assert "recipe cifar10-vit" in (tmp_path / "race.md").read_text()
