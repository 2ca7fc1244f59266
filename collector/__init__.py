from . import speedups

# The compiled parser, classifier and tracker, where scripts/compile.sh built them for these sources.
speedups.enable(__path__)
