import pytest

from benchmarks.tables import print_table, ratio


def test_ratio_has_two_decimals_and_a_dash_for_a_missing_figure():
    assert ratio(3.0, 2.0) == "1.50" and ratio(0.0, 2.0) == "0.00"
    assert ratio(None, 2.0) == ratio(3.0, None) == ratio(3.0, 0.0) == "-"


def test_a_table_is_markdown_lined_up_names_left_figures_right(capsys):
    print_table(["system", "words/s"], [["raw", "1234"], ["fp32 long name", None]])
    assert capsys.readouterr().out.splitlines() == [
        "| system         | words/s |",
        "| :------------- | ------: |",
        "| raw            |    1234 |",
        "| fp32 long name |       - |",
    ]


def test_a_row_with_a_missing_cell_is_refused():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        print_table(["a", "b"], [["x"]])
