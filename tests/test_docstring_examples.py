"""The usage examples in the contracts' docstrings run and say what they show."""
import doctest

import pytest

from export import budget, formats, generative, lm_quality
from pipeline import stages


@pytest.mark.parametrize("module", [formats, budget, stages, generative, lm_quality], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0
