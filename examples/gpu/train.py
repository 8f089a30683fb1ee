"""A small PyTorch training (an MLP on a synthetic classification task, no download), logging
through the expt binding: params, a loss per step, accuracy and throughput per epoch, a
histogram of the first layer's weights, an image of the confusion matrix, and the model as an
artifact. Runs on the GPU expt assigned (CUDA_VISIBLE_DEVICES), or on the CPU if there is none.
"""
import argparse
import os
import time

import torch
import torch.nn as nn

import expt

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--batch", type=int, default=512)
p.add_argument("--samples", type=int, default=200000)
args = p.parse_args()

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
print(f"device: {name} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')})",
      flush=True)
expt.tag(device=name, torch=torch.__version__)

# A synthetic task: 10 classes given by a fixed random teacher network over 64 features.
g = torch.Generator().manual_seed(0)
features, classes = 64, 10
teacher = torch.randn(features, classes, generator=g)
x = torch.randn(args.samples, features, generator=g)
y = (x @ teacher + 0.5 * torch.randn(args.samples, classes, generator=g)).argmax(1)
split = args.samples * 9 // 10
x, y = x.to(dev), y.to(dev)
xtr, ytr, xva, yva = x[:split], y[:split], x[split:], y[split:]

torch.manual_seed(1)
model = nn.Sequential(nn.Linear(features, args.hidden), nn.ReLU(),
                      nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                      nn.Linear(args.hidden, classes)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
lossf = nn.CrossEntropyLoss()
expt.param(parameters=sum(t.numel() for t in model.parameters()), device=dev.type)

step = 0
for epoch in range(args.epochs):
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(split, device=dev)
    for i in range(0, split, args.batch):
        idx = perm[i:i + args.batch]
        loss = lossf(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            expt.log(loss=loss.item(), step=step)  # .item() syncs: every 10th step only
        step += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        pred = model(xva).argmax(1)
        acc = (pred == yva).float().mean().item()
        conf = torch.zeros(classes, classes, device=dev)
        conf.index_put_((yva, pred), torch.ones_like(yva, dtype=torch.float), accumulate=True)
    metrics = {"val_acc": acc, "epoch_seconds": secs, "samples_per_s": split / secs}
    if dev.type == "cuda":
        metrics["gpu_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    expt.log(metrics, step=step)
    expt.histogram("layer0/weights", model[0].weight.detach().flatten().cpu().tolist(), step=step)
    # The confusion matrix as a grayscale image, rows normalised, scaled up 16x.
    img = (conf / conf.sum(1, keepdim=True).clamp(min=1)).repeat_interleave(16, 0)
    img = img.repeat_interleave(16, 1).cpu()
    try:
        expt.image("val/confusion", img.numpy(), step=step)
    except (ImportError, RuntimeError, TypeError):
        pass  # no NumPy in this environment: no image
    print(f"epoch {epoch + 1}/{args.epochs}: val_acc={acc:.4f} {split / secs:,.0f} samples/s",
          flush=True)

path = os.path.join(os.environ.get("EXPT_OUTPUT_DIR", "."), "model.pt")
torch.save(model.state_dict(), path)
expt.artifact(path)
print(f"saved {path}")
