"""``python -m auditkit …`` (and ``torchrun --nproc_per_node=K -m auditkit scan …``)."""

from auditkit.cli import main

if __name__ == "__main__":
    main()
