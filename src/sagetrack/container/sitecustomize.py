# sagetrack bootstrap, added to the code tarball by sagetrack.TensorFlow.
# Inert unless the job's environment has SAGETRACK=1; chains to any sitecustomize it shadows.
def _sagetrack_bootstrap() -> None:
    import importlib
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is not None and spec.loader is not None:
        shadowed = importlib.util.module_from_spec(spec)
        sys.modules["_sagetrack_shadowed_sitecustomize"] = shadowed
        spec.loader.exec_module(shadowed)
    if os.environ.get("SAGETRACK") != "1":
        return
    runtime = "_sagetrack_runtime"  # the container side, shipped beside this file
    try:
        importlib.import_module(runtime + ".container.alias").install(runtime)
        importlib.import_module(runtime + ".container.bootstrap").activate()
    except Exception as exc:
        if os.environ.get("SAGETRACK_STRICT", "").lower() in ("1", "true", "yes"):
            raise
        sys.stderr.write(f"sagetrack: tracking disabled in this process ({exc!r})\n")


_sagetrack_bootstrap()
del _sagetrack_bootstrap
