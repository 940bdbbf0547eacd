"""The import graph stays layered: no circles, and no arrow back up (benchmarks/import_graph.py).

export/ and models/ never import pipeline/ (the foundation every layer shares
aside: backend, errors, atomic files), models/ never imports export/, and no
two modules import each other through any chain. Found twice slipping (one
circle, five arrows up) while nothing failed; now something does.
"""
from benchmarks import import_graph
from tests.conftest import ROOT


def test_no_import_circles():
    assert import_graph.cycles(import_graph.arrows(ROOT)) == []


def test_no_arrow_climbs_back_up():
    assert import_graph.upward(import_graph.arrows(ROOT)) == []


def test_the_rule_sees_an_arrow_up_and_a_circle():
    """The checks themselves: a lower module importing the runner is caught, and so is a
    circle, while an arrow into the foundation is allowed."""
    edges = {("export.convert", "pipeline.run"), ("export.convert", "pipeline.errors"),
             ("models.user", "export.convert"), ("pipeline.a", "pipeline.b"),
             ("pipeline.b", "pipeline.a")}
    assert import_graph.upward(edges) == [("export.convert", "pipeline.run"),
                                          ("models.user", "export.convert")]
    assert import_graph.cycles(edges) == [["pipeline.a", "pipeline.b"]]


def test_function_level_imports_count(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "pipeline" / "report.py").write_text("")
    (tmp_path / "export" / "doctor.py").write_text(
        "def treat():\n    from pipeline import report\n")
    assert import_graph.upward(import_graph.arrows(str(tmp_path))) == [
        ("export.doctor", "pipeline.report")]
