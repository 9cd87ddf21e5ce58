"""eapo inside other trainers: TRL (`eapo.integrations.trl`) and verl (`eapo.integrations.verl`).

Both adapters call the same `eapo.core` functions as eapo's own trainer (DESIGN.md §6), so a run's math is
the same on a laptop and on a cluster. Neither framework is imported here: install the extra you need
(`pip install "eapo[trl]"` or `pip install "eapo[verl]"`) and import its submodule. docs/integrations.md
says what a user changes in an existing TRL script or verl recipe.
"""

from __future__ import annotations
