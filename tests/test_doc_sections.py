"""train/doc_sections.py: benchmarks rewrite their own marked section of a doc, nothing else."""

from __future__ import annotations

from train.doc_sections import markers, replace_section

START, END = markers("pretraining-ablations")
SECTION = f"{START}\nnew numbers\n{END}"


def test_markers_are_html_comments_named_after_the_section():
    assert markers("decoder") == ("<!-- decoder:start -->", "<!-- decoder:end -->")


def test_section_is_created_with_the_file(tmp_path):
    doc = tmp_path / "docs" / "results.md"
    replace_section(doc, "pretraining-ablations", "new numbers")
    assert doc.read_text() == f"# Results\n\n{SECTION}\n"


def test_only_the_section_between_the_markers_is_replaced(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(
        f"# Results\n\n## Throughput\nkeep me\n\n{START}\nold numbers\n"
        f"{END}\n\n## Decoder\nkeep me too\n"
    )
    replace_section(doc, "pretraining-ablations", "\nnew numbers\n")
    text = doc.read_text()
    assert "old numbers" not in text and text.count("new numbers") == 1
    assert text.startswith(f"# Results\n\n## Throughput\nkeep me\n\n{SECTION}")
    assert text.endswith(f"{END}\n\n## Decoder\nkeep me too\n")


def test_other_sections_are_left_alone(tmp_path):
    doc = tmp_path / "results.md"
    replace_section(doc, "decoder", "decoder numbers")
    replace_section(doc, "pretraining-ablations", "old numbers")
    replace_section(doc, "pretraining-ablations", "new numbers")
    decoder_start, decoder_end = markers("decoder")
    assert doc.read_text() == (
        f"# Results\n\n{decoder_start}\ndecoder numbers\n{decoder_end}\n\n{SECTION}\n"
    )


def test_a_file_without_markers_gets_the_section_appended(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\n## Decoder\nkeep me\n")
    replace_section(doc, "pretraining-ablations", "new numbers")
    assert doc.read_text() == f"# Results\n\n## Decoder\nkeep me\n\n{SECTION}\n"


def test_an_end_marker_before_the_start_marker_does_not_count(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\n\n{END}\n")
    replace_section(doc, "pretraining-ablations", "new numbers")
    assert doc.read_text() == f"# Results\n\n{END}\n\n{SECTION}\n"
