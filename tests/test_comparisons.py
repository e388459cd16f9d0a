"""Comparison batches: one submission, a grid of cells with the same prompts and seeds.

A real simulator and qcluster run the grid; the tests read the rows, the files and the
simulator's own count of checkpoint loads.
"""
from __future__ import annotations

import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command

from batches.cli import UsageError
from batches.models import Comparison, Job, Unit
from batches.services import comparisons
from batches.services.submission import SubmissionError
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CKPT_A, CKPT_B = "sd_xl_base_1.0.safetensors", "pixel_art_xl.safetensors"


@pytest.fixture
def owner(transactional_db):
    return get_user_model().objects.create_user("artist", password="pw")


def compare(owner, axes, **params):
    defaults = {"prompts": ["pixel art knight"], "profile": "speed", "steps": 4, "client": None, "width": 64,
                "height": 64, "count": 2, "batch_size": 1, "finish": False}
    return comparisons.comparison_submit(owner=owner, axes=axes, **{**defaults, **params})


def wait_cells(comparison, timeout=90):
    wait_until(lambda: not comparison.cells.filter(status__in=Job.ACTIVE).exists(), timeout=timeout,
               message=f"comparison {comparison.pk} to finish")


def test_a_2x2x2_comparison_runs_8_cells_with_the_same_seeds_one_load_per_checkpoint(
        simulator_factory, qcluster_factory, owner, output_root):
    _, url = simulator_factory("--step-ms", "5")
    comparison = compare(owner, [f"checkpoint={CKPT_A},{CKPT_B}", "cfg=6,8", "steps=4,6"], client="default")
    qcluster_factory(url)
    cells = list(comparison.cells.order_by("id"))
    assert len(cells) == 8 and {tuple(sorted(c.cell.items())) for c in cells} == {
        tuple(sorted({"checkpoint": a, "cfg": b, "steps": c}.items()))
        for a in (CKPT_A, CKPT_B) for b in (6.0, 8.0) for c in (4, 6)}
    wait_cells(comparison)
    seeds = {c.pk: list(c.units.order_by("index").values_list("seed", flat=True)) for c in cells}
    assert len({tuple(s) for s in seeds.values()}) == 1  # the same seeds in every cell
    assert requests.get(url + "/sim/stats", timeout=5).json()["checkpoint_loads"] <= 2
    for cell in cells:
        cell.refresh_from_db()
        assert cell.status == Job.Status.COMPLETED and cell.images_done == 2
        assert cell.checkpoint == cell.cell["checkpoint"] and cell.cfg == cell.cell["cfg"]
        for image in cell.images.all():
            assert (output_root / image.file_path).is_file()  # the seed layout, like any job's
            meta = json.loads((output_root / image.metadata_path).read_text())
            assert meta["comparison"] == {"id": comparison.pk, "cell": cell.cell}


def test_the_grid_fills_prompt_by_prompt_across_the_cells_of_one_checkpoint(owner):
    # The queue runs units in their insertion order (FIFO within a priority): read it on the rows.
    comparison = compare(owner, [f"checkpoint={CKPT_A},{CKPT_B}", "cfg=6,8"], count=3, wake=False)
    order = list(Unit.objects.filter(job__comparison=comparison).order_by("id")
                 .values_list("checkpoint", "index", "job__cell"))
    checkpoints = [row[0] for row in order]
    assert checkpoints == sorted(checkpoints, key=[CKPT_A, CKPT_B].index)  # one group per checkpoint
    first_group = [row for row in order if row[0] == CKPT_A]
    assert [row[1] for row in first_group] == [0, 0, 1, 1, 2, 2]  # slot 0 across the cells, then slot 1


def test_cancelling_one_cell_leaves_the_others_running(simulator_factory, qcluster_factory, owner, output_root):
    from batches.services.control import job_cancel

    _, url = simulator_factory("--step-ms", "20")
    comparison = compare(owner, ["cfg=6,8"], count=4)
    qcluster_factory(url)
    first, second = comparison.cells.order_by("id")
    job_cancel(first, by="test")
    wait_cells(comparison)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Job.Status.CANCELLED and second.status == Job.Status.COMPLETED
    assert second.images.count() == 4


def test_blind_votes_tally_per_axis_value_and_the_order_hides_the_cells(owner, django_user_model):
    comparison = compare(owner, ["cfg=6,8", "steps=4,6"], wake=False)
    other = django_user_model.objects.create_user("judge", password="pw")
    cells = {(c.cell["cfg"], c.cell["steps"]): c for c in comparison.cells.all()}
    orders = [[c.pk for c in comparisons.blind_order(comparison, user, 0)] for user in (owner, other)]
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(c.pk for c in cells.values())
    assert comparisons.next_blind_slot(comparison, owner) == 0
    comparisons.vote(comparison, user=owner, slot=0, winner_id=cells[(8.0, 6)].pk)
    comparisons.vote(comparison, user=owner, slot=1, winner_id=cells[(8.0, 4)].pk)
    comparisons.vote(comparison, user=other, slot=0, winner_id=cells[(6.0, 6)].pk)
    assert comparisons.next_blind_slot(comparison, owner) is None
    team = {(row["axis"], row["value"]): (row["wins"], row["votes"]) for row in comparisons.tally(comparison)}
    assert team == {("cfg", 6.0): (1, 3), ("cfg", 8.0): (2, 3), ("steps", 4): (1, 3), ("steps", 6): (2, 3)}
    mine = {(row["axis"], row["value"]): row["wins"] for row in comparisons.tally(comparison, user=owner)}
    assert mine == {("cfg", 6.0): 0, ("cfg", 8.0): 2, ("steps", 4): 1, ("steps", 6): 1}
    comparisons.vote(comparison, user=owner, slot=1, winner_id=cells[(6.0, 4)].pk)  # a changed mind
    assert comparison.votes.filter(user=owner).count() == 2
    with pytest.raises(comparisons.VoteError):
        comparisons.vote(comparison, user=owner, slot=0, winner_id=Job.objects.exclude(comparison=comparison)
                         .values_list("pk", flat=True).first() or 10**9)


@pytest.mark.parametrize("axes, words", [
    (["shade=1,2"], "unknown axis 'shade'"),
    (["cfg=6,8", "cfg=7,9"], "given twice"),
    (["cfg=6,6"], "value 6.0 given twice"),
    (["cfg=6"], "at least two values"),
    (["cfg=6,x"], "'x' is not a number"),
    (["cfg=1,2,3", "steps=4,5,6", "checkpoint=a,b,c,d"], "the limit is 27"),
])
def test_bad_axes_are_all_listed_and_nothing_is_queued(owner, axes, words):
    with pytest.raises(SubmissionError) as caught:
        compare(owner, axes)
    assert words in " ".join(caught.value.errors["compare"])
    assert not Comparison.objects.exists() and not Job.objects.exists()


def test_every_problem_is_listed_at_once_including_a_checkpoint_comfyui_does_not_have(
        simulator_factory, owner):
    _, url = simulator_factory()
    from batches.comfyui import ComfyUIClient

    with pytest.raises(SubmissionError) as caught:
        compare(owner, ["checkpoint=nope.safetensors," + CKPT_A, "cfg=6,6"], steps=0,
                client=ComfyUIClient(url, client_id="test"))
    errors = caught.value.errors
    assert "value 6.0 given twice" in " ".join(errors["compare"])
    assert not Job.objects.exists()
    with pytest.raises(SubmissionError) as caught:
        compare(owner, ["checkpoint=nope.safetensors," + CKPT_A], steps=0, client=ComfyUIClient(url, client_id="t"))
    errors = caught.value.errors
    assert any("nope.safetensors" in m and "checkpoint=nope.safetensors" in m for m in errors["checkpoint"])
    assert any("between" in m for m in errors["steps"])  # a problem of every cell, said once
    assert len(errors["steps"]) == 1 and not Job.objects.exists()


def test_the_cli_queues_a_comparison_and_batch_status_shows_its_grid(owner, capsys, output_root):
    call_command("batch_generate", "--prompt", "pixel art knight", "--count", "2", "--batch-size", "1",
                 "--width", "64", "--height", "64", "--compare", "lora=none,pixel_art_lora.safetensors",
                 "--compare", "cfg=6,8", "--no-finish", "--json", "--user", "artist")
    data = json.loads(capsys.readouterr().out)
    assert len(data["cells"]) == 4 and {c["cell"]["lora"] for c in data["cells"]} == {
        "none", "pixel_art_lora.safetensors"}
    comparison = Comparison.objects.get()
    assert {j.lora for j in comparison.cells.all()} == {"", "pixel_art_lora.safetensors"}
    call_command("batch_status", f"c{comparison.pk}")
    out = capsys.readouterr().out
    assert f"Comparison {comparison.pk}: 4 cells" in out and "lora=no LoRA, cfg=6.0" in out
    with pytest.raises(UsageError, match="--compare: unknown axis"):
        call_command("batch_generate", "--prompt", "x", "--compare", "colour=a,b", "--user", "artist")
    assert Comparison.objects.count() == 1  # the refused one queued nothing
