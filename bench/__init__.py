"""Benchmarks of issue 8: figures that show the GPU never waits on DGX Pixels and that nothing slows
as work grows. Run `python -m bench list` (or `python manage.py bench list`); see bench/README.md."""
