"""Identity classification loss for the adversarial (gradient-reversed) identity head."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.registry import LOSSES


@LOSSES.register("identity_adversarial")
def identity_adversarial_loss(logits: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the identity discriminator over samples with a known identity.

    Unlabelled samples (identity −1) contribute nothing; a batch without any
    labelled sample gives 0 (connected to the graph, so backward still works).
    The adversarial part is the gradient-reversal layer in front of the
    discriminator (training/models/modules/identity.py), not a sign here.
    """
    identity = identity.long()
    known = identity >= 0
    if not known.any():
        return logits.float().sum() * 0.0
    if int(identity.max()) >= logits.shape[1]:
        raise ValueError(f"identity id {int(identity.max())} >= the discriminator's {logits.shape[1]} classes; "
                         f"model.identity.num_identities does not match the data's identity index.")
    return F.cross_entropy(logits[known].float(), identity[known])
