"""`import kestrel` stays light: it must not pull in torch.compile's machinery."""
import subprocess
import sys


def test_import_does_not_load_dynamo_or_inductor():
    code = ("import sys, kestrel, kestrel.layers, kestrel.models; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', "
            "'torch._inductor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
