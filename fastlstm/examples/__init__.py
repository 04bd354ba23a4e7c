"""Worked examples, one per use fastlstm is for, run by ``python -m fastlstm demo NAME``.

========== ==========================================================
adding     the adding problem (the default demo, fastlstm.tools.demo)
text       character-level language model on the standard library's sources
timeseries forecasting the yearly sunspot numbers (needs statsmodels)
speech     speaker recognition on the Japanese Vowels recordings (needs the
           data from the aeon or sktime wheel)
========== ==========================================================

Each module has ``add_arguments(parser)`` and ``main(args) -> exit code``,
and a ``run(...)`` function that returns its measured numbers (used by the
tests).  ``--fast`` trains for a few epochs (CI); ``--png PATH`` draws the
learning curve and the predictions with matplotlib, when it is installed.
"""

# name -> (module, one-line help); modules are imported when an example runs
EXAMPLES = {
    "adding": ("fastlstm.tools.demo", "the adding problem (the default)"),
    "text": ("fastlstm.examples.text", "character-level language model on Python's sources"),
    "timeseries": ("fastlstm.examples.timeseries", "forecast the yearly sunspot numbers"),
    "speech": ("fastlstm.examples.speech", "speaker recognition on Japanese Vowels"),
}
