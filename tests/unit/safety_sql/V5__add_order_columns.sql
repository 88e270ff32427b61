ALTER TABLE orders ADD COLUMN shipped_at timestamptz DEFAULT now();
ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();
ALTER TABLE orders ADD COLUMN channel text NOT NULL;
ALTER TABLE orders ADD COLUMN priority integer NOT NULL DEFAULT 0;
