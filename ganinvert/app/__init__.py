"""The applications over the library, importable so that the entry points in ``scripts/`` stay
thin and tests call the same code (the lightning-hydra-template pattern: ``run(cfg)`` here, a
``@hydra.main`` wrapper there):

- :mod:`.config`: a Hydra config turned into the generator, the observations and the inverters,
  shared by the invert and compare apps;
- :mod:`.invert`: the main job, every inverter on every data set, four output files;
- :mod:`.compare`: the same comparison under a Lightning ``Trainer``;
- :mod:`.train`: training a shipped generator and exporting its weights;
- :mod:`.aggregate`: a sweep's runs collected into one table and one plot.

Rows and summaries of both apps come from :mod:`ganinvert.metrics`. These modules need the
application stack (hydra-core, lightning, matplotlib, torchvision, mlxtend); ``import
ganinvert`` does not import them.
"""
