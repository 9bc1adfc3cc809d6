"""Diff `cargo xtask grads` against PyTorch autograd on the same weights and batch, and load a
trained checkpoint into PyTorch strictly. Needs torch and safetensors:

    python scripts/check_against_pytorch.py [RUN_DIR]

Run from the workspace root after `cargo build --release -p xtask`.
"""
import os, subprocess, sys, tempfile
import torch, safetensors.torch as st

XTASK = os.path.abspath("target/release/xtask")
os.chdir(tempfile.mkdtemp())
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
st.save_file(model.state_dict(), "m.safetensors")
x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
st.save_file({"x": x, "y": y}, "b.safetensors")
subprocess.run([XTASK, "grads", "--model", "m.safetensors", "--batch", "b.safetensors", "--loss", "ce", "--out", "g.safetensors"], check=True)
x.requires_grad_(True)
out = model(x)
loss = torch.nn.functional.cross_entropy(out, y)
loss.backward()
g = st.load_file("g.safetensors")
for name, p in model.named_parameters():
    print(name, (p.grad - g[name]).abs().max().item(), p.grad.abs().max().item())
print("x", (x.grad - g["x.grad"]).abs().max().item(), "loss", (loss - g["loss"]).abs().item(), "out", (out - g["output"]).abs().max().item())
# mse
model1 = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(), torch.nn.Linear(50, 1))
st.save_file(model1.state_dict(), "m1.safetensors")
t = torch.randint(0, 10, (64,)).float()
st.save_file({"x": x.detach(), "y": t}, "b1.safetensors")
subprocess.run([XTASK, "grads", "--model", "m1.safetensors", "--batch", "b1.safetensors", "--loss", "mse", "--out", "g1.safetensors"], check=True)
x1 = x.detach().clone().requires_grad_(True)
loss = (model1(x1).squeeze(-1) - t).pow(2).mean(); loss.backward()
g = st.load_file("g1.safetensors")
for name, p in model1.named_parameters():
    print("mse", name, (p.grad - g[name]).abs().max().item(), p.grad.abs().max().item())
print("mse x", (x1.grad - g["x.grad"]).abs().max().item(), "loss", (loss - g["loss"]).abs().item())
# load a checkpoint trained by us, strictly
m = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
if len(sys.argv) > 1:
    print(m.load_state_dict(st.load_file(os.path.join(sys.argv[1], "model.safetensors")), strict=True))
