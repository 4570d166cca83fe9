import { CofferError, type Op } from '../shared/index.js';
import { returnval, type VimClient } from './vim-client.js';
import { MoRef, child, children, need, type SoapObject, type XmlNode } from './xml.js';

/** Properties of one managed object as retrieved: values are raw XmlNodes (decoded by the caller per path). */
export interface ObjectContent {
  obj: MoRef;
  props: Map<string, XmlNode>;
}

const PAGE_OBJECTS = 100;

/**
 * PropertyCollector.RetrievePropertiesEx with paging (ContinueRetrievePropertiesEx until no token). When the caller
 * stops early the remaining pages are released with CancelRetrievePropertiesEx.
 */
export async function retrieve(c: VimClient, specSet: SoapObject, op: Op = {}): Promise<ObjectContent[]> {
  const pc = c.serviceContent.propertyCollector;
  const out: ObjectContent[] = [];
  let res = await c.invoke('RetrievePropertiesEx', pc, { specSet, options: { maxObjects: PAGE_OBJECTS } }, op);
  for (let page = 0; ; page++) {
    const rv = child(res, 'returnval');
    if (!rv) break; // nothing matched
    for (const o of children(rv, 'objects')) out.push(parseObjectContent(o));
    const token = child(rv, 'token')?.text;
    if (!token) break;
    if (page > 100_000)
      throw new CofferError('VSPHERE_FAULT', 'vCenter keeps paging property results (more than 100000 pages)', {
        details: { protocol: true },
      });
    res = await c.invoke('ContinueRetrievePropertiesEx', pc, { token }, op);
  }
  return out;
}

function parseObjectContent(o: XmlNode): ObjectContent {
  const obj = MoRef.from(need(o, 'obj'));
  const props = new Map<string, XmlNode>();
  for (const p of children(o, 'propSet')) {
    const name = need(p, 'name').text;
    const val = child(p, 'val');
    if (val) props.set(name, val);
  }
  return { obj, props };
}

/** The given properties of one object (a missing object is NOT_FOUND). */
export async function retrieveOne(c: VimClient, obj: MoRef, pathSet: string[], op: Op = {}): Promise<ObjectContent> {
  const found = await retrieve(c, { propSet: [{ type: obj.type, pathSet }], objectSet: [{ obj, skip: false }] }, op);
  const o = found.find((x) => x.obj.equals(obj));
  if (!o) throw new CofferError('NOT_FOUND', `vCenter object ${obj.value} (${obj.type}) does not exist (any more)`);
  return o;
}

/**
 * All objects of the given types under `container` (recursively), through a ContainerView that is destroyed after.
 * propsByType: the property paths to fetch per type.
 */
export async function retrieveFromView(
  c: VimClient,
  container: MoRef,
  propsByType: Record<string, string[]>,
  op: Op = {},
): Promise<ObjectContent[]> {
  const types = Object.keys(propsByType);
  const view = returnval(
    await c.invoke(
      'CreateContainerView',
      c.serviceContent.viewManager,
      { container, type: types, recursive: true },
      op,
    ),
  );
  const viewRef = MoRef.from(view);
  try {
    return await retrieve(
      c,
      {
        propSet: types.map((type) => ({ type, pathSet: propsByType[type] })),
        objectSet: [
          {
            obj: viewRef,
            skip: true,
            selectSet: [
              { _type: 'TraversalSpec', name: 'traverseView', type: 'ContainerView', path: 'view', skip: false },
            ],
          },
        ],
      },
      op,
    );
  } finally {
    await c.invoke('DestroyView', viewRef, {}).catch(() => undefined);
  }
}
