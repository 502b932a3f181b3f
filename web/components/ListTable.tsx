import { Children, type ReactNode } from "react";

/** A column heading; `num` right-aligns the column (counts, numbers). */
export type Column = string | { label: string; num: true };

/**
 * A list page's table: the heading row, the rows given as children, and one row saying `empty`
 * across the table when there are none.
 */
export function ListTable({
  testId,
  columns,
  empty,
  children,
}: {
  testId: string;
  columns: Column[];
  empty: ReactNode;
  children: ReactNode;
}) {
  return (
    <div className="table-wrap panel" style={{ padding: 0 }}>
      <table data-testid={testId}>
        <thead>
          <tr>
            {columns.map((c) =>
              typeof c === "string" ? (
                <th key={c}>{c}</th>
              ) : (
                <th key={c.label} className="num">
                  {c.label}
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>
          {Children.count(children) === 0 ? (
            <tr>
              <td colSpan={columns.length} className="empty">
                {empty}
              </td>
            </tr>
          ) : (
            children
          )}
        </tbody>
      </table>
    </div>
  );
}
