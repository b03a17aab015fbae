"""Local development platform for paystream: emulator, Stripe, Lambda data plane, stack orchestration."""
