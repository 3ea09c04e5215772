/**
 * Reading the few XML answers of the S3 API that the S3 store needs (listings, parts, uploads,
 * errors). They are flat: an element never holds another of its own name, so finding an element
 * is finding its opening and closing tags. Text is unescaped: the five named entities and numeric
 * ones (`&#x01;`, which the RADOS Gateway writes for a control character in a key). Private to
 * lib/store.
 *
 * @example
 * ```ts
 * import { childText, elements } from "./_s3_xml.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const xml = "<R><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents></R>";
 * deepStrictEqual(elements(xml, "Contents").map((inner) => childText(inner, "Key")), ["a&b", "c"]);
 * ```
 *
 * @module
 */

const NAMED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** `text` with its XML entities replaced by the characters they stand for. */
export function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, entity: string) => {
    if (entity.startsWith("#")) {
      const point = entity[1] === "x" || entity[1] === "X"
        ? Number.parseInt(entity.slice(2), 16)
        : Number.parseInt(entity.slice(1), 10);
      return point <= 0x10ffff ? String.fromCodePoint(point) : whole;
    }
    return NAMED_ENTITIES[entity] ?? whole;
  });
}

/**
 * The inner XML of every element named `name` in `xml`, in order (`<Name/>` gives `""`). Matches
 * the exact name: `<Key>` is not `<KeyCount>`.
 */
export function elements(xml: string, name: string): string[] {
  const found: string[] = [];
  const open = new RegExp(`<${name}(?:\\s[^>]*)?(/?)>`, "g");
  const close = `</${name}>`;
  for (let match = open.exec(xml); match !== null; match = open.exec(xml)) {
    const start = match.index + match[0].length;
    if (match[1] === "/") {
      found.push("");
      continue;
    }
    const end = xml.indexOf(close, start);
    if (end < 0) break;
    found.push(xml.slice(start, end));
    open.lastIndex = end + close.length;
  }
  return found;
}

/** The unescaped text of the first element named `name` in `xml`, or undefined. */
export function childText(xml: string, name: string): string | undefined {
  const [inner] = elements(xml, name);
  return inner === undefined ? undefined : unescapeXml(inner);
}
