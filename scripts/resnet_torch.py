"""The same ResNet-18 as chestcam's `model::resnet`, in PyTorch, with the
same parameter names (torchvision's, head named `head`), for the benchmark
and for reference values in tests."""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, stem="small", num_labels=14):
        super().__init__()
        self.stem = stem
        if stem == "small":
            self.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [64, 128, 256, 512]
        for i, w in enumerate(widths):
            c_in = 64 if i == 0 else widths[i - 1]
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, w, stride), BasicBlock(w, w, 1)))
        self.head = nn.Linear(512, num_labels)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        if self.stem != "small":
            x = nn.functional.max_pool2d(x, 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


if __name__ == "__main__":
    for stem in ["small", "imagenet"]:
        m = ResNet18(stem)
        print(stem, sum(p.numel() for p in m.parameters()))
