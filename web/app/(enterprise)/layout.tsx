import type { ReactNode } from "react";

import { Shell } from "@/components/Shell";

// The enterprise routes share the console's frame. Their gate is not here but in each page,
// server action and route handler (lib/features.ts says why).
export default function EnterpriseLayout({ children }: { children: ReactNode }) {
  return <Shell>{children}</Shell>;
}
