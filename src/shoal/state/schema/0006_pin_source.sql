-- 0006: how each pinned fingerprint came to be trusted, so that 'shoal trust --list' can show an admin
-- which pins were learned on first contact (and from which address) and which an admin set by hand:
-- 'first contact from ADDR' or 'shoal trust'. NULL for pins made before this column existed (first
-- contact, address not recorded).
ALTER TABLE peers ADD COLUMN pinned_how TEXT;
