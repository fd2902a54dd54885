"""``convzoo compare``: one parent run, one nested child run per architecture and seed, and a comparison of them:
each architecture's seed repeats summarised with a 95 % interval, and every pair tested on the same test images."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from convzoo.errors import ConvzooError
from convzoo.runs.lifecycle import run_lifecycle
from convzoo.tracking import run_log
from convzoo.tracking.comparison import finished_children, log_comparison, run_row
from convzoo.tracking.significance import write_significance
from convzoo.vocabulary import COMPARE_TAG, GROUP_TAG, STUDY_TAG


def seed_list(first: int, count: int) -> list[int]:
    """Seeds ``first`` … ``first + count - 1``; ``count`` below 1 is a one-line error."""
    if count < 1:
        raise ConvzooError(f"--seeds must be at least 1 (the number of runs per architecture), got {count}")
    return list(range(first, first + count))


def describe(arch_names: Sequence[str], seeds: Sequence[int]) -> str:
    """The parent's description: what was compared, and why its pairs are paired."""
    repeats = (f"{len(seeds)} seeds ({seeds[0]} … {seeds[-1]}) per architecture" if len(seeds) > 1
               else f"one seed ({seeds[0]}) per architecture")
    return (f"Comparison of **{', '.join(arch_names)}**, {repeats}. For each seed every architecture trains on the "
            f"same validation split and the same order of training images, and all are evaluated on the same test "
            f"images, so their per-image predictions pair up: "
            + ("McNemar's exact test" if len(seeds) == 1 else "a paired bootstrap over the test images")
            + " compares each pair, Holm-corrected over all pairs. Figures are mean ± half the 95 % Student's t "
              "interval over the seeds.")


def _label(name: str, seed: int, seeds: Sequence[int]) -> str:
    return f"{name} seed {seed}" if len(seeds) > 1 else name


def report(arch_names: Sequence[str], seeds: Sequence[int], failures: Mapping[str, str], parent_id: str,
           echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Log the comparison of the parent's finished children into the active parent run and print it."""
    done = finished_children(parent_id)
    rows = [run_row(done[(name, seed)]) for seed in seeds for name in arch_names if (name, seed) in done]
    children = {name: {seed: done[(name, seed)].info.run_id for seed in seeds if (name, seed) in done}
                for name in arch_names}
    lines = log_comparison(rows, failures, parent_id, lambda folder: write_significance(children, folder),
                           describe(arch_names, seeds))
    for line in lines:
        echo(line)
    if not rows:
        raise ConvzooError(f"every architecture failed: {'; '.join(f'{k}: {v}' for k, v in failures.items())}")
    return rows


def compare(arch_names: list[str], train_one: Callable[[str, int], str], seeds: Sequence[int] = (0,),
            echo: Callable[[str], None] = print, experiment: str | None = None,
            params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train each architecture once per seed as a child of one parent run (resumed under ``mlflow run --run-id``),
    whose params are ``params`` (what the comparison was asked for: architectures, recipe, seeds, overrides).

    ``train_one(name, seed)`` trains one child in the active parent and returns its run id. Seed by seed, every
    architecture trains before the next seed starts. A failing architecture is recorded and not tried again for
    later seeds; the others go on; the parent fails only if every architecture failed.
    """
    if not arch_names:
        raise ConvzooError("no architectures to compare")
    with run_lifecycle(experiment) as parent:
        run_log.log_new_params(params or {})
        done = finished_children(parent.run_id)
        failures: dict[str, str] = {}
        for seed in seeds:
            for name in arch_names:
                label = _label(name, seed, seeds)
                if (name, seed) in done:
                    echo(f"{label}: finished earlier in this parent run ({done[(name, seed)].info.run_id}); not "
                         f"trained again")
                elif name not in failures:
                    echo(f"== {label}")
                    try:
                        train_one(name, seed)
                    except Exception as error:  # one architecture failing must not stop the others
                        failures[name] = f"{type(error).__name__}: {error}"
                        echo(f"{label} failed: {failures[name]}")
        rows = report(arch_names, seeds, failures, parent.run_id, echo)
    return {"parent_run_id": parent.run_id, "rows": rows, "failures": failures}


def compare_in_study(arch_names: list[str], storage: Any, storage_url: str, study_name: str, settings: Mapping[str, Any],
                     train_one: Callable[[str, int, list, Any], Any], resume: Callable[[str, list], Any],
                     seeds: Sequence[int] = (0,), experiment: str | None = None,
                     echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Be one worker of a comparison spread over processes: the study queues one trial per architecture and seed
    when it is made, each worker trains the next one nobody has taken, and whichever worker finds nothing left logs
    the comparison into the shared parent run. ``storage`` is the study's, opened from ``storage_url``;
    ``train_one(name, seed, callbacks, placement)`` trains one child."""
    import optuna

    from convzoo.studies import optuna_studies as studies
    from convzoo.studies import trial_runs
    from convzoo.tracking import study_runs
    from convzoo.runs.training_run import RunPlacement
    from convzoo.tracking.store import redact

    if not arch_names:
        raise ConvzooError("no architectures to compare")
    experiment_id = study_runs.experiment_id(experiment)
    joined = studies.join_study(
        storage, study_name, {"kind": "compare", "archs": arch_names, "seeds": list(seeds), **settings}, "maximize",
        optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(),
        queued=[{"arch": name, "seed": seed} for seed in seeds for name in arch_names],
        create_parent=lambda: study_runs.create_run(
            experiment_id, f"compare {study_name}", {COMPARE_TAG: "parent", STUDY_TAG: study_name},
            {"archs": ",".join(arch_names), "study": study_name, "storage": redact(storage_url),
             "seeds": len(seeds), **{key: value for key, value in settings.items() if value is not None}}))
    parent_id = joined.parent_run_id
    echo(f"study {study_name} ({'created' if joined.created else 'joined'}); parent run {parent_id}")

    def run_trial(trial, record) -> float:
        name, seed = trial.suggest_categorical("arch", arch_names), trial.suggest_categorical("seed", list(seeds))
        report_epochs = trial_runs.ReportToTrial(trial, "test_acc")  # recorded only: nothing is chosen on it
        previous = record.user_attrs.get(studies.RUN_ATTR)
        if previous:
            value = trial_runs.continue_trial(previous, trial, trial.number, "test_acc", resume, [report_epochs], echo)
            if value is not None:
                return value
        echo(f"== {_label(name, seed, seeds)}")
        with trial_runs.trial_run(trial, experiment_id,
                                  RunPlacement(None, parent_id, {STUDY_TAG: study_name, GROUP_TAG: name})) as placement:
            result = train_one(name, seed, [report_epochs], placement)
        return result.history[-1].test_acc

    echo(studies.work(joined.study, studies.Queue(), run_trial, echo).line())
    failures = {trial.params["arch"]: trial.user_attrs[studies.ERROR_ATTR]
                for trial in joined.study.get_trials(deepcopy=False) if studies.failed_by_error(trial)}
    with run_lifecycle(run_id=parent_id):
        rows = report(arch_names, seeds, failures, parent_id, echo)
    return {"parent_run_id": parent_id, "rows": rows, "failures": failures}
