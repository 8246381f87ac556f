"""``python -m anon_plugin.evaluate DATA_DIR --out OUT_DIR ...``: the evaluate command without the main CLI."""

from .command import evaluate_command

if __name__ == "__main__":
    evaluate_command(prog_name="python -m anon_plugin.evaluate")
