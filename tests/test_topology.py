"""ddpm/topology.py: split_entry, stage_sections, and that STAGE_SECTIONS and OPTIONAL agree with the schema."""
import pytest

from ddpm.schema import RUNTIME, SCHEMA
from ddpm.topology import OPTIONAL, STAGE_OWN, STAGE_SECTIONS, split_entry, stage_sections
from ddpm.validators import ParamError


@pytest.mark.parametrize("entry, parts", [
    ("sweep_celeba.prompts", ("sweep_celeba", "prompts")), ("diffusion", ("diffusion", None)),
    ("a.b.c", ("a", "b.c")), ("a.", ("a", None)),
])
def test_split_entry(entry, parts):
    assert split_entry(entry) == parts


def test_a_stage_reads_its_own_section_first():
    assert stage_sections("train_mnist") == ["train_mnist", "runtime", "diffusion", "model"]
    assert stage_sections("sample") == ["sample", "runtime", "diffusion"]
    assert stage_sections("download_mnist") == ["download_mnist"]
    assert stage_sections("embed_clip") == ["embed_clip", "runtime", "clip", "train_celeba.monitor_prompts",
                                            "sweep_celeba.prompts"]
    assert stage_sections("report_celeba") == ["clip", "train_celeba", "sweep_celeba"]  # no section of its own
    for stage in STAGE_SECTIONS:
        got = stage_sections(stage)
        assert len(got) == len(set(got)), stage
        assert (got[0] == stage) == STAGE_OWN[stage] and stage not in got[1:]


def test_an_unknown_stage_names_the_known_ones():
    with pytest.raises(ParamError) as e:
        stage_sections("train")
    message = str(e.value)
    assert message.startswith("unknown stage 'train'; known stages: download_mnist, train_mnist, ")
    assert all(stage in message for stage in STAGE_SECTIONS) and "\n" not in message
    with pytest.raises(ParamError, match="unknown stage 'runtime'"):  # a shared section is not a stage
        stage_sections("runtime")


def test_every_entry_names_a_section_and_key_of_the_schema():
    assert STAGE_OWN == {name: name in SCHEMA for name in STAGE_SECTIONS}
    assert [name for name, own in STAGE_OWN.items() if not own] == ["report_celeba"]
    for stage, entries in STAGE_SECTIONS.items():
        for entry in entries:
            section, key = split_entry(entry)
            assert section in SCHEMA, (stage, entry)
            assert key is None or key in SCHEMA[section], (stage, entry)
            assert section != stage, (stage, entry)  # its own section is implied, not listed


def test_every_schema_section_is_read_by_some_stage():
    read = {split_entry(e)[0] for stage in STAGE_SECTIONS for e in stage_sections(stage)}
    assert read == set(SCHEMA)


def test_only_stages_that_read_runtime_may_override_it():
    assert set(OPTIONAL) == {name for name, entries in STAGE_SECTIONS.items()
                             if STAGE_OWN[name] and "runtime" in entries}
    assert all(keys == set(RUNTIME) == {"device", "amp", "nproc"} for keys in OPTIONAL.values())
    for stage in ("download_mnist", "download_celeba", "report", "report_celeba"):
        assert stage not in OPTIONAL
    for stage in ("train_mnist", "sample", "judge", "embed_clip", "sweep_celeba"):
        assert stage in OPTIONAL
    for stage, keys in OPTIONAL.items():
        assert not keys & set(SCHEMA[stage]), stage  # an override, never a key the section already defines
