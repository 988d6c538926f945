// Reads a PMTiles archive's header and one tile over HTTP range requests with the npm `pmtiles` package.
// Usage: node read_pmtiles.mjs URL Z X Y   -> prints JSON {header, tileBytes, magic}
import { PMTiles } from "pmtiles";

const [url, z, x, y] = process.argv.slice(2);
const archive = new PMTiles(url);
const header = await archive.getHeader();
const tile = await archive.getZxy(Number(z), Number(x), Number(y));
const bytes = tile ? new Uint8Array(tile.data) : new Uint8Array();
console.log(JSON.stringify({
  header: { minZoom: header.minZoom, maxZoom: header.maxZoom, tileType: header.tileType, clustered: header.clustered,
            minLon: header.minLon, minLat: header.minLat, maxLon: header.maxLon, maxLat: header.maxLat,
            numAddressedTiles: header.numAddressedTiles },
  tileBytes: bytes.length,
  magic: Buffer.from(bytes.slice(0, 12)).toString("latin1"),
}));
