"""The ``evaluate`` click command: options, defaults in --help, usage errors, a light import."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from anon_plugin.evaluate.command import evaluate_command

OPTIONS = ("--split", "--identities", "--probes", "--methods", "--strengths", "--recognizer", "--seed", "--out")


def test_help_lists_every_option_with_its_default():
    result = CliRunner().invoke(evaluate_command, ["--help"])
    assert result.exit_code == 0
    for option in OPTIONS:
        assert option in result.output
    text = " ".join(result.output.split())
    for default in ("[default: 3", "[default: small,medium,large]", "[default: sface]", "[default: 0]",
                    "every method in anon_plugin.inference.fill.FILLERS", "[default: (all)"):
        assert default in text, default


def test_usage_errors_name_the_valid_choices(tmp_path):
    (tmp_path / "labels.csv").write_text("path,identity\n")
    runner = CliRunner()
    bad_method = runner.invoke(evaluate_command, [str(tmp_path), "--methods", "original,sharpen", "--out", "o"])
    assert bad_method.exit_code == 2 and "sharpen" in bad_method.output and "inpaint" in bad_method.output
    bad_strength = runner.invoke(evaluate_command, [str(tmp_path), "--strengths", "huge", "--out", "o"])
    assert bad_strength.exit_code == 2 and "small, medium, large" in bad_strength.output
    no_out = runner.invoke(evaluate_command, [str(tmp_path)])
    assert no_out.exit_code == 2


def test_bad_labels_exit_1_with_one_line(tmp_path):
    (tmp_path / "labels.csv").write_text("path,identity\na.jpg,1\n")
    result = CliRunner().invoke(evaluate_command, [str(tmp_path), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1
    assert "need 2 or more" in result.output and "Traceback" not in result.output


def test_importing_the_command_loads_no_heavy_module():
    code = ("import sys; import anon_plugin.evaluate.command; "
            "print(sorted(m for m in ('torch', 'cv2', 'dlib', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
