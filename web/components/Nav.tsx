"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";

import { LockIcon } from "@/components/LockIcon";

export interface NavItem {
  href: string;
  label: string;
  /** The license feature this entry needs, and whether the license grants it. */
  feature?: string;
  locked?: boolean;
}

function isCurrent(pathname: string, href: string, all: NavItem[]): boolean {
  if (href === "/") return pathname === "/";
  if (pathname !== href && !pathname.startsWith(`${href}/`)) return false;
  // The most specific entry wins (/audit/export is not also /audit).
  return !all.some((o) => o.href.length > href.length && (pathname === o.href || pathname.startsWith(`${o.href}/`)));
}

/** The sidebar: community entries, then enterprise ones (with a lock when not licensed). */
export function Nav({ community, enterprise }: { community: NavItem[]; enterprise: NavItem[] }) {
  const pathname = usePathname();
  const all = [...community, ...enterprise];
  const link = (item: NavItem) => (
    <Link
      key={item.href}
      href={item.href}
      className="nav-link"
      aria-current={isCurrent(pathname, item.href, all) ? "page" : undefined}
      data-locked={item.feature ? String(Boolean(item.locked)) : undefined}
      data-feature={item.feature}
      title={item.locked ? `Enterprise: needs the license feature ${item.feature}` : undefined}
    >
      <span>{item.label}</span>
      {item.locked ? (
        <span className="lock">
          <LockIcon label={`locked: needs the license feature ${item.feature}`} />
        </span>
      ) : null}
    </Link>
  );
  return (
    <nav aria-label="Main">
      {community.map(link)}
      <div className="nav-section">Enterprise</div>
      {enterprise.map(link)}
    </nav>
  );
}
